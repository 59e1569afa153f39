import os
# Nothing in the tests may wait on the Hugging Face hub.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import pytest, torch

@pytest.fixture(autouse=True)
def one_thread():
    "One torch thread, as the subprocesses the tests start: tiny models gain nothing from more, and lose a lot on a busy CPU."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
