from condgen.generators import find_generator
from condgen.plugins import get_plugin_manager


def test_model_names_of_the_issue_resolve():
    plugins = get_plugin_manager({"images"})
    assert find_generator(plugins, "images", "dit").name == "images"
    assert find_generator(plugins, "images", "maskgit").name == "images-maskgit"
    assert find_generator(plugins, "images", "shapes").name == "images-shapes"
