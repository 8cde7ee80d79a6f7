"""The check behind the "no patient data in logs" tests finds a value, not digits that happen to match."""

from __future__ import annotations

from tests.unit.log_checks import patient_values_in


def test_the_log_check_finds_patient_values_but_not_timestamps():
    lines = [
        '{"_aws":{"Timestamp":1796135316138},"DriftPSI":[7.878481],"timestamp":"2026-12-01 14:28:36,138+0000"}',
        '{"message":"batch","rows":1}',
    ]
    assert patient_values_in("\n".join(lines), (138, 33.6)) == []
    assert patient_values_in('{"row":{"glucose":138}}', (138, 33.6)) == [138]
    assert patient_values_in('{"result":"outbox/day_1-e138fa0c9d2b/"}', (138, 33.6)) == []  # a hex tag
    assert patient_values_in('{"message":"bad row: bmi=33.6"}\nglucose 138', (138, 33.6)) == [
        "bad row: bmi=33.6",
        "glucose 138",
    ]
    assert patient_values_in('{"message":"no features for p-1"}', ("p-1", 187.3)) == ["no features for p-1"]
    assert patient_values_in('{"Latency":[187.31]}', ("p-1", 187.3)) == []
