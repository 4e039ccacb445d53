import pytest

import dfsae


@pytest.fixture(scope="session")
def digits():
    return dfsae.load_dataset("mnist5k")
