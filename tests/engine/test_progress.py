import threading
import time

import pytest

from engine.progress import Cancelled, CancelToken, check_cancel, report, sub_progress


def test_cancel_token_across_threads():
    tok = CancelToken()
    seen = []

    def work():
        try:
            for _ in range(1000):
                check_cancel(tok)
                time.sleep(0.005)
            seen.append("finished")
        except Cancelled:
            seen.append("cancelled")

    t = threading.Thread(target=work)
    t.start()
    time.sleep(0.05)
    tok.cancel()
    t.join(2)
    assert seen == ["cancelled"]


def test_report_clips_and_sub_progress_maps():
    got = []
    cb = lambda f, m="": got.append((round(f, 3), m))  # noqa: E731
    report(cb, 1.5, "x")
    report(None, 0.3)
    sub = sub_progress(cb, 0.2, 0.4, "step: ")
    sub(0.5, "half")
    assert got == [(1.0, "x"), (0.3, "step: half")]
    assert sub_progress(None, 0, 1) is None
    check_cancel(None)
    with pytest.raises(Cancelled):
        t = CancelToken()
        t.cancel()
        t.raise_if_cancelled()
