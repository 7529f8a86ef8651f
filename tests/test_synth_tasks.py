"""The SynthFaces tasks pass the same plugin contract a third-party task must pass."""

from faceptor_core.testing import task_contract_tests

SYNTH_TASKS = [
    "synth_landmarks",
    "synth_parsing",
    "synth_age",
    "synth_expression",
    "synth_attributes",
    "synth_identity",
]

test_synth_contract = task_contract_tests(SYNTH_TASKS)
