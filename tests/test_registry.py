import pytest

from auscult.errors import ConfigError
from auscult.registry import Registry


def test_register_build_and_defaults():
    reg = Registry("widget")

    @reg.register("Box", defaults={"size": 3}, tags=("toy",))
    def make_box(size, colour="red"):
        return (size, colour)

    assert "box" in reg and "BOX" in reg
    assert reg.build("box") == (3, "red")
    assert reg.build("box", size=5, colour="blue") == (5, "blue")
    assert reg.names() == ["box"]
    assert reg.get("box").tags == ("toy",)


def test_unknown_name_lists_known_ones():
    reg = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(ConfigError, match="unknown widget 'b'.*known widgets: a"):
        reg.get("b")


def test_double_registration_is_an_error():
    reg = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError):
        reg.register("A")(lambda: 2)
