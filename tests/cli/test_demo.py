"""The README's main job: ``autotts demo`` on the embedded store, offline."""

from autotts_gym.cli.main import main


def test_demo_prints_a_row_per_policy(capsys):
    assert main(["demo", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "splits: synthetic/search, synthetic/heldout" in out
    rows = {line.split("  ")[0].strip(): line.split() for line in out.splitlines()[2:]}
    assert set(rows) == {"random (masked)", "SC@1", "SC@8", "SC@64", "CMC beta=0.5"}
    accuracy = {name: float(cols[-5]) for name, cols in rows.items()}
    tokens = {name: float(cols[-4]) for name, cols in rows.items()}
    # More samples cost more and, on the calibrated store, vote better than one.
    assert tokens["SC@1"] < tokens["SC@8"] < tokens["SC@64"]
    assert accuracy["SC@64"] > accuracy["SC@1"]
