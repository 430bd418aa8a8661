"""DNS rebinding (docs/webhooks.md): a delivery connects to the address
its check resolved, never resolving the endpoint's name again, so a name
that answers a public address to the check and a private one afterwards
does not reach the private one; the Host header and, for HTTPS, the TLS
server name and certificate check stay the hostname's."""

import http.client
import socket
import ssl

import pytest

from tests.test_webhooks import Receiver, _paid
from webhooks import delivery, services
from webhooks.models import DeliveryAttempt

HOST = "hooks.example.test"
PUBLIC = "93.184.216.34"  # a global address: never connected to here
real_getaddrinfo = socket.getaddrinfo


class RebindingResolver:
    """Answers ``first`` for HOST once, then ``then`` every time after."""

    def __init__(self, first, then):
        self.answers = [first]
        self.then = then
        self.asked = 0

    def __call__(self, host, port, *args, **kwargs):
        if host != HOST:
            return real_getaddrinfo(host, port, *args, **kwargs)
        self.asked += 1
        address = self.answers.pop(0) if self.answers else self.then
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port or 0))]


@pytest.fixture
def server(settings):
    settings.DEBUG = False
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_TIMEOUT = 2
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def run_after_commit(django_capture_on_commit_callbacks):
    """As tests.test_webhooks's: the deliveries queued after commit happen."""

    def run(action, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)

    return run


def _endpoint(server, clerk, monkeypatch):
    """An endpoint on HOST, made while HOST resolves to a public address."""
    port = server.server.server_address[1]
    monkeypatch.setattr(socket, "getaddrinfo", RebindingResolver(PUBLIC, PUBLIC))
    endpoint, _ = services.endpoint_create(
        f"http://{HOST}:{port}/hook", ["payment.recorded"], clerk
    )
    return endpoint, port


@pytest.mark.django_db
def test_a_name_that_resolves_to_a_private_address_after_the_check_is_not_reached(
    server, clerk, monkeypatch, run_after_commit
):
    # given an endpoint whose name answers a public address to the delivery's
    # check, then the receiver's loopback address to anyone who asks again
    _, port = _endpoint(server, clerk, monkeypatch)
    resolver = RebindingResolver(PUBLIC, "127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    connected = []

    def create_connection(address, *args, **kwargs):
        connected.append(address)
        if address[0] == PUBLIC:
            raise ConnectionRefusedError("refused (the test's public address)")
        return real_create_connection(address, *args, **kwargs)

    real_create_connection = socket.create_connection
    monkeypatch.setattr(socket, "create_connection", create_connection)
    # when a payment's event is delivered
    _paid(run_after_commit, clerk)
    # then the connection went to the checked address, the name was asked
    # once, and the private address was never reached
    assert connected == [(PUBLIC, port)]
    assert resolver.asked == 1
    assert server.requests == []
    [attempt] = DeliveryAttempt.objects.all()
    assert attempt.status_code is None and "refused" in attempt.error


@pytest.mark.django_db
def test_the_pinned_connection_keeps_the_hostname_in_the_host_header(
    server, clerk, monkeypatch, run_after_commit
):
    # given a name whose checked address is the receiver's (taken as public
    # here) and that resolves to an unreachable private address afterwards
    _, port = _endpoint(server, clerk, monkeypatch)
    monkeypatch.setattr(socket, "getaddrinfo", RebindingResolver("127.0.0.1", "10.255.255.1"))
    real_reason = services._private_reason
    monkeypatch.setattr(
        services, "_private_reason", lambda a: "" if a == "127.0.0.1" else real_reason(a)
    )
    # when
    _paid(run_after_commit, clerk)
    # then the receiver got it, addressed to the hostname
    [request] = server.received()
    assert request["headers"]["host"] == f"{HOST}:{port}"
    assert DeliveryAttempt.objects.get().status_code == 200


class Socket:
    def setsockopt(self, *args):
        pass


def test_an_https_connection_pinned_to_an_address_checks_the_hostnames_certificate(monkeypatch):
    # given a pinned HTTPS connection, its socket and TLS wrapping recorded
    connected, wrapped = [], []
    monkeypatch.setattr(
        socket, "create_connection", lambda address, *a, **k: connected.append(address) or Socket()
    )
    handler = delivery._PinnedHTTPSHandler([PUBLIC])
    context = handler._context or ssl.create_default_context()
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    context.wrap_socket = lambda sock, server_hostname: wrapped.append(server_hostname) or sock
    pinned = delivery._pinned_connection(http.client.HTTPSConnection, [PUBLIC])
    connection = pinned(HOST, 8443, context=context)
    # when
    connection.connect()
    # then it connected to the address and spoke TLS for the hostname
    assert connected == [(PUBLIC, 8443)]
    assert wrapped == [HOST]
    assert connection.host == HOST


def test_with_private_addresses_allowed_nothing_is_pinned(settings):
    settings.DEBUG = False
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert services.checked_addresses(f"http://{HOST}/hook") == ("", None)
