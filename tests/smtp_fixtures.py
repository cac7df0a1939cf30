"""Fixtures for the SMTP tests (``pytest_plugins = ("tests.smtp_fixtures",)``): certificates,
aiosmtpd servers on free ports, stopped after each test, and the handler they answer with."""

from __future__ import annotations

import pytest

from tests.smtp_servers import (
    Certs,
    Handler,
    RefusingController,
    authenticator,
    free_port,
    make_certs,
)


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def start_server():
    controllers = []

    def start(handler: Handler, **kwargs) -> int:
        port = free_port()
        controller = RefusingController(handler, hostname="127.0.0.1", port=port,
                                       server_hostname="mail.test", ready_timeout=5,
                                       **kwargs)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(params=["lock-step", "pipelining"])
def handler(request) -> Handler:
    """Every test that takes this runs twice: against a server without PIPELINING, and
    against one that offers it."""
    return Handler(pipelining=request.param == "pipelining")


@pytest.fixture
def starttls_port(start_server, handler, certs) -> int:
    """STARTTLS required, AUTH PLAIN/LOGIN offered only after it."""
    return start_server(handler, tls_context=certs.server_context(), require_starttls=True,
                        authenticator=authenticator, auth_required=True,
                        auth_require_tls=True)
