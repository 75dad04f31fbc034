"""The confinement of previews, as pure functions: the CSP and where a redirect may lead.

That Chromium enforces them is tests/browser/test_preview_isolation.py.
"""

from __future__ import annotations

import pytest

from agentspace.server.isolation import Scope, location, policy, prefix_of

P = "/a%40b/agentspace/preview/s1/8000"
HERE = Scope("127.0.0.1:8888", "http", P, 8000)
PAGE = f"{P}/dir/page"


def directives(csp: str) -> dict[str, list[str]]:
    parts = (d.split() for d in csp.split(";"))
    return {d[0]: d[1:] for d in parts if d}


def test_policy_lists_only_the_prefix() -> None:
    csp = directives(policy(HERE))
    pages = [f"http://127.0.0.1:8888{P}/", f"https://127.0.0.1:8888{P}/"]
    sockets = [f"ws://127.0.0.1:8888{P}/", f"wss://127.0.0.1:8888{P}/"]
    assert csp["connect-src"] == pages + sockets
    for name in ("form-action", "frame-src", "child-src", "worker-src", "manifest-src", "base-uri"):
        assert csp[name] == pages, name
    assert csp["object-src"] == csp["frame-ancestors"] == ["'none'"]
    # loads: the prefix, https: (CDNs), inline, data: and blob:, never Jupyter's other paths
    inline = ["'unsafe-inline'", "'unsafe-eval'"]
    assert csp["script-src"] == [*pages, "https:", *inline, "data:", "blob:"]
    assert csp["style-src"] == [*pages, "https:", inline[0], "data:", "blob:"]
    for name in ("img-src", "media-src", "font-src"):
        assert csp[name] == [*pages, "https:", "data:", "blob:"], name


def test_policy_escapes_or_refuses_what_a_source_cannot_hold() -> None:
    odd = directives(policy(Scope("[::1]:8888", "http", "/x;y,z w/agentspace/preview/s/1")))
    assert odd["connect-src"][0] == "http://[::1]:8888/x%3By%2Cz%20w/agentspace/preview/s/1/"
    for host in ("evil; script-src *", "a b", ""):
        csp = directives(policy(Scope(host, "http", P)))
        assert csp["connect-src"] == csp["form-action"] == csp["img-src"] == ["'none'"], host


def test_prefix_of_a_raw_path() -> None:
    assert prefix_of(f"{P}/x/%2F/y", "/a%40b/") == P
    assert prefix_of(P, "/a%40b/") == P
    assert prefix_of("/agentspace/preview/s1", "/") == ""
    assert prefix_of("/api/kernels", "/") == ""


MAPPED = [
    # the app's own root, in every spelling
    ("/x?y=1#f", f"{P}/x?y=1#f"),
    ("http://127.0.0.1:8000/abs", f"{P}/abs"),
    ("http://localhost:8000/abs", f"{P}/abs"),
    ("/../../../../api/kernels", f"{P}/api/kernels"),
    # this Jupyter server outside the prefix: mapped under it
    ("http://127.0.0.1:8888/api/kernels", f"{P}/api/kernels"),
    ("https://127.0.0.1:8888/api/kernels", f"{P}/api/kernels"),
    ("HTTP://127.0.0.1:8888/api", f"{P}/api"),
    ("//127.0.0.1:8888/api/kernels", f"{P}/api/kernels"),
    ("/\\127.0.0.1:8888/api/kernels", f"{P}/api/kernels"),
    ("\\/127.0.0.1:8888/api", f"{P}/api"),
    ("http:\\\\127.0.0.1:8888\\api", f"{P}/api"),
    ("\thttp://127.0.0.1:8888/api ", f"{P}/api"),
    ("ht\ttp://127.0.0.1:8888/api", f"{P}/api"),
    ("http://user:pw@127.0.0.1:8888/api", f"{P}/api"),
    ("http://2130706433:8888/api", f"{P}/api"),
    ("http://0x7f.1:8888/api", f"{P}/api"),
    ("http://127.0.0.1.:8888/api", f"{P}/api"),
    ("http://%31%32%37.0.0.1:8888/api", f"{P}/api"),
    ("http:/api/kernels", f"{P}/api/kernels"),
    ("http:api", f"{P}/dir/api"),
    ("http://127.0.0.1:99999/api", f"{P}/api"),  # unreadable: counted as ours
    # relative references, resolved against the page as a browser does
    ("other?q=1", f"{P}/dir/other?q=1"),
    ("?q=1", f"{PAGE}?q=1"),
    ("../../../../../api/kernels", f"{P}/a%40b/api/kernels"),
    ("%2e%2e/%2E%2e/%2e%2E/%2e%2e/%2e%2e/%2e%2e/api", f"{P}/api"),
    ("./a/./b/..", f"{P}/dir/a/"),
    # already under the prefix (an app honouring X-Forwarded-Prefix): kept
    (f"http://127.0.0.1:8888{P}/inside?q=1", f"{P}/inside?q=1"),
    (f"{P}/inside", f"{P}/inside"),
    (P, P),
]


@pytest.mark.parametrize(("value", "expected"), MAPPED)
def test_redirects_to_this_origin_stay_under_the_prefix(value: str, expected: str) -> None:
    assert location(value, HERE, PAGE) == expected


@pytest.mark.parametrize(
    "value",
    [
        "https://example.com/callback?code=1#x",
        "http://127.0.0.1:9999/x",  # another port: another origin, which CSP keeps out
        "http://localhost:8888/x",  # another host name: another origin too
        "mailto:someone@example.com",
    ],
)
def test_redirects_elsewhere_pass(value: str) -> None:
    assert location(value, HERE, PAGE) == value


@pytest.mark.parametrize(
    ("host", "scheme", "value", "mapped"),
    [
        ("[::1]:8888", "http", "http://[0:0::1]:8888/api", True),
        ("localhost:8888", "http", "http://ｌｏｃａｌｈｏｓｔ:8888/api", True),
        ("jupyter.example.com", "https", "http://Jupyter.Example.com/api", True),
        ("jupyter.example.com", "https", "https://jupyter.example.com:443/api", True),
        ("jupyter.example.com", "https", "https://jupyter.example.com:8443/api", False),
        ("jupyter.example.com:8443", "https", "https://jupyter.example.com/api", False),
    ],
)
def test_hosts_are_compared_as_a_browser_reads_them(
    host: str, scheme: str, value: str, mapped: bool
) -> None:
    result = location(value, Scope(host, scheme, P, 8000), PAGE)
    assert result == (f"{P}/api" if mapped else value)
