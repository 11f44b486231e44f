"""Run the cyz scheduler: `python scheduler.py` is the same as `cyz schedule`."""

from cyz.scheduling import run_forever

if __name__ == "__main__":
    run_forever()
