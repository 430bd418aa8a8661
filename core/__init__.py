"""What every app of the site shares and none owns: lock helpers, page
infrastructure (tables, filters, exports, money formatting, URL converters,
admin mixins). It knows no billing model; every other app may import it.
"""
