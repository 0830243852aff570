import condgen


def test_model_names_and_aliases_resolve():
    assert condgen.load("images", "dit").name == "images"
    assert condgen.load("images", "maskgit").name == "images-maskgit"
    assert condgen.load("images", "shapes").name == "images-shapes"
