import pytest
from benchbench.models import list_models, resolve_models
from benchbench.runners import resolve_backends

from benchbench.core.registry import Registry, UnknownNameError


def test_register_get_and_duplicates():
    reg = Registry("thing")
    reg.register("a", 1)
    assert reg.get("a") == 1
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)


def test_unknown_name_suggests_close_matches():
    reg = Registry("thing")
    for name in ("resnet18", "resnet50", "repvgg_a0"):
        reg.register(name, name)
    with pytest.raises(UnknownNameError) as err:
        reg.get("resnet19")
    assert "resnet18" in str(err.value) and "\n" not in str(err.value)


def test_names_natural_sort_and_patterns():
    reg = Registry("thing")
    for name in ("net_10", "net_2", "net_1", "other"):
        reg.register(name, None)
    assert reg.names("net_*") == ["net_1", "net_2", "net_10"]
    assert reg.names("*", exclude=["net_1*"]) == ["net_2", "other"]


def test_resolve_family_glob_and_list():
    names, notes = resolve_models("vanillanet")
    assert names == ["vanillanet_5"] and "default" in notes[0]
    assert resolve_models("vanillanet_*")[0] == list_models("vanillanet_*")
    assert resolve_models("vanillanet_6,vanillanet_5")[0] == ["vanillanet_6", "vanillanet_5"]
    with pytest.raises(UnknownNameError, match="vanillanet_5"):
        resolve_models("vanilanet_5")


def test_lookups_ignore_case_and_still_suggest():
    reg = Registry("thing")
    for name in ("VanillaNet_5", "resnet18"):
        reg.register(name, name)
    assert reg.get("vanillanet_5") == reg.get("VANILLANET_5") == "VanillaNet_5"
    assert reg.names("vanilla*") == ["VanillaNet_5"]
    with pytest.raises(UnknownNameError, match="did you mean resnet18"):
        reg.get("ResNet19")
    reg.register("Net", 1)
    reg.register("NET", 2)
    assert reg.canonical("net") is None and reg.get("NET") == 2  # two spellings: only an exact one decides


def test_models_and_backends_resolve_in_any_case():
    assert resolve_models("VanillaNet_5")[0] == ["vanillanet_5"]
    names, notes = resolve_models("VANILLANET")
    assert names == ["vanillanet_5"] and "'VANILLANET' is a family" in notes[0]
    assert resolve_models("VanillaNet_*")[0] == resolve_models("vanillanet_*")[0]
    assert resolve_backends("ORT,Ov,LiteRT,Torch") == ["ort", "openvino", "tflite", "torch"]
    with pytest.raises(UnknownNameError, match="did you mean ort"):
        resolve_backends("ONNXRT")


def test_a_backend_is_one_file(tmp_path, monkeypatch):
    """A module with a Runner subclass, dropped into the runners package, is a backend: by name and alias,
    listed, and its declared packages' versions recorded. Nothing else is edited."""
    import benchbench.runners as runners
    from benchbench.runners import tracked_packages

    (tmp_path / "echo_backend.py").write_text(
        "from benchbench.runners.base import Runner\n\n\n"
        "class EchoRunner(Runner):\n"
        "    name = 'echo'\n    aliases = ('parrot',)\n    artifact = 'onnx'\n    formats = ('onnx',)\n"
        "    versions = ('echo-runtime',)\n    description = 'a backend from one file'\n")
    monkeypatch.setattr(runners, "__path__", [*runners.__path__, str(tmp_path)])
    monkeypatch.setattr(runners, "_registry", None)
    assert runners.get_runner("PARROT").__name__ == "EchoRunner"
    assert "echo" in runners.list_runners() and runners.resolve_backends("ort,parrot") == ["ort", "echo"]
    assert "echo-runtime" in tracked_packages()
    monkeypatch.setattr(runners, "_registry", None)  # forget it again for the other tests


def test_subclassed_runners_do_not_inherit_aliases():
    from benchbench.runners import runner_entry

    assert runner_entry("onnxruntime").name == "ort" and runner_entry("ort-cuda").aliases == ()
    assert runner_entry("cuda").name == "torch-cuda" and runner_entry("Pytorch").name == "torch"
