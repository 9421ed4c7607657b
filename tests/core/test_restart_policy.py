"""One restart policy: backs off while a process keeps crashing, forgives one that ran healthily."""

from meshserve.core.restart_policy import RestartPolicy


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_crashing_soon_after_each_start_doubles_the_wait_up_to_the_cap():
    clock = Clock()
    policy = RestartPolicy(first_s=0.5, max_s=4.0, healthy_after_s=30, clock=clock)
    delays = []
    for _ in range(6):
        policy.up()
        clock.now += 1
        delays.append(policy.delay_after_exit())
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_process_that_ran_healthily_is_restarted_after_the_first_delay_again():
    clock = Clock()
    policy = RestartPolicy(first_s=0.5, max_s=10.0, healthy_after_s=30, clock=clock)
    delays = []
    for _ in range(5):  # killed five times, 40 s of healthy running apart
        policy.up()
        clock.now += 40
        delays.append(policy.delay_after_exit())
    assert delays == [0.5] * 5


def test_failed_starts_keep_backing_off():
    clock = Clock()
    policy = RestartPolicy(first_s=0.2, max_s=30.0, clock=clock)
    policy.up()
    clock.now += 100
    assert policy.delay_after_exit() == 0.2
    assert [policy.delay_after_exit() for _ in range(3)] == [0.4, 0.8, 1.6]  # never came up in between
