"""ISO 4217 currency codes, split by their minor unit.

Money here has two decimal places, so only currencies whose minor unit is 2
are accepted; codes with another minor unit are known but refused.
"""

TWO_DECIMAL_CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD
    BTN BWP BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB
    EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD
    KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MKD MMK MNT MOP MRU MUR
    MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON
    RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD XCG YER ZAR ZMW ZWG
    """.split()
)

OTHER_MINOR_UNIT_CURRENCIES = {
    # minor unit 0
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    # minor unit 3
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    # minor unit 4
    "CLF": 4,
    "UYW": 4,
}


def currency_problem(code):
    """Return why ``code`` cannot be used as a currency, or None when it can."""
    if not isinstance(code, str):
        return "must be a three-letter ISO 4217 currency code"
    if code in TWO_DECIMAL_CURRENCIES:
        return None
    if code in OTHER_MINOR_UNIT_CURRENCIES:
        return (
            f"currency {code} has {OTHER_MINOR_UNIT_CURRENCIES[code]} decimal places; "
            "only currencies with 2 decimal places are supported"
        )
    return f"unknown currency code {code!r} (expected an ISO 4217 code such as USD)"
