"""Shared pytest configuration."""


def pytest_configure(config):
    # Box2D's SWIG bindings warn on import under Python 3.11; the warning is not ours.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:builtin type .* has no __module__ attribute:DeprecationWarning",
    )
