"""The core's plugin contract, in one line per task set."""

from faceptor_core.testing import run_contract, task_contract_tests

test_gaze_synth_contract = task_contract_tests(["gaze_synth"])


def test_gaze_mpiifacegaze_contract(mpii_root, tmp_path):
    run_contract("gaze_mpiifacegaze", root=str(mpii_root), tmp=tmp_path)
