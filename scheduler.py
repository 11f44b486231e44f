"""Run the cyz scheduler: `python scheduler.py` is the same as `cyz schedule`."""

from cyz.cli import main

if __name__ == "__main__":
    # Through the command, so settings and config are checked the same way (exit 2).
    main(["schedule"], prog_name="cyz")
