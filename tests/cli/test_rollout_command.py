"""`meshserve rollout` as typed: a split that cannot be meant is refused by the parser or in one
line naming the fix, before any mesh is asked."""

from __future__ import annotations

import pytest

from meshserve.cli.main import main


@pytest.mark.parametrize("option, value, words", [
    ("--weights", "1=ninety", "'ninety' in '1=ninety' is not a whole-number weight"),
    ("--weights", "=90", "'=90' is not VERSION=whole-number weight"),
    ("--weights", ",", "give at least one VERSION=whole-number weight"),
    ("--shadow", "3=half", "'half' in '3=half' is not a fraction from 0 to 1"),
])
def test_a_split_written_wrong_is_refused_by_the_parser_naming_the_part(capsys, option, value, words):
    with pytest.raises(SystemExit) as exited:
        main(["rollout", "iris", option, value, "--address", "127.0.0.1:9"])
    assert exited.value.code == 2
    assert f"argument {option}: {words}" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["iris", "--shadow", "3=0.5", "--no-shadows"], "give either --shadow or --no-shadows"),
    (["promote", "iris", "now"], "write `meshserve rollout MODEL` or `meshserve rollout {status,promote,pause,"
                                 "resume,rollback} MODEL`"),
    (["promote"], "write `meshserve rollout MODEL`"),
    (["frobnicate", "iris"], "'frobnicate' is not one of status, promote, pause, resume, rollback"),
])
def test_words_that_name_no_action_are_one_line_with_exit_status_2(capsys, argv, words):
    assert main(["rollout", *argv, "--address", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("meshserve: ") and words in err and err.count("\n") == 1


def test_a_plan_status_reads_as_the_operator_needs_it():
    from meshserve.cli.commands.rollout import describe_plan

    status = {"model": "churn", "primary": "1",
              "plan": {"candidate": "2", "steps": [5, 25, 100], "min_requests": 200,
                       "bounds": {"max_error_rate": 0.01, "max_p99_ratio": 2.0, "max_disagreement": 0.05}},
              "state": {"stage": "step", "step": 1, "paused": True, "holding": "holding: 40 of the 200 requests",
                        "measurements": {"requests": 40, "error_rate": 0.0, "p99_ms": 12.5, "primary_p99_ms": 10.0},
                        "history": [{"what": "step 2: version 2 gets 25%", "why": "every bound kept",
                                     "by": "rollout controller"}]},
              "weights": {"1": 75, "2": 25}, "shadows": {}}
    lines = describe_plan(status).splitlines()
    assert lines[0] == "churn: version 2 against 1: step 2 of 3 (25%) (paused)"
    assert lines[1] == "  live: weights 1=75, 2=25; shadows none"
    assert lines[2] == "  holding: 40 of the 200 requests"
    assert "40 requests (needs 200), error rate 0 (bound 0.01), p99 12.5 ms vs primary 10 ms (bound 2.0x)" in lines[3]
    assert lines[4] == "  step 2: version 2 gets 25%: every bound kept (rollout controller)"
