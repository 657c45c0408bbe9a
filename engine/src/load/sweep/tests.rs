use super::*;
use crate::load::stats::{ArrivalFate, Outcome, Recorder};

/// One second's results: `n` arrivals, all sent on time, each served in `ms` ms.
fn second(n: u64, ms: u64) -> StatsDelta {
    second_with(n, ms, 0, 0)
}

/// `n` arrivals served in `ms` ms, `failed` of them failing, `dropped` more dropped.
fn second_with(n: u64, ms: u64, failed: u64, dropped: u64) -> StatsDelta {
    let r = Recorder::new(vec!["get".into()]);
    for i in 0..n {
        r.record_arrival(0, 0, ArrivalFate::Sent(Duration::ZERO));
        let error = (i < failed).then(|| {
            crate::load::driver::OpError::new(crate::load::driver::FailureKind::Timeout, "")
        });
        r.record(
            0,
            0,
            &Outcome::Done {
                latency: Duration::from_millis(ms),
                ttfb: None,
                bytes: 1,
                error,
                waited: Some(Duration::ZERO),
            },
        );
    }
    for _ in 0..dropped {
        r.record_arrival(0, 0, ArrivalFate::Dropped);
    }
    r.take()
}

fn block(yaml: &str) -> SweepBlock {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn plan(yaml: &str) -> SweepPlan {
    SweepPlan::from_block(&block(yaml)).unwrap()
}

#[test]
fn rates_step_by_factor_or_by_step_up_to_to() {
    let p = plan("{from: 100/s, to: 400/s, factor: 1.5, slo: {p99: 50ms}}");
    assert_eq!(p.rates, [100.0, 150.0, 225.0, 337.5]);
    let p = plan("{from: 100, to: 1000/s, step: +300/s, slo: {error_rate: 1%}}");
    assert_eq!(p.rates, [100.0, 400.0, 700.0, 1000.0]);
    assert_eq!(p.step_time_s, 60);
    assert_eq!(p.warmup_s, 5);
    assert_eq!(p.stable.window_s, 10);
    assert_eq!(p.slo.error_rate_percent, Some(1.0));
    assert_eq!(p.max_dropped_percent, DEFAULT_MAX_DROPPED);
    let p = plan("{from: 50/s, to: 50/s, factor: 2, step_time: 8s, warmup: 2s, stable: {window: 20s, cv: 3%}, slo: {p99: 5ms}}");
    assert_eq!(p.rates, [50.0]);
    // A window longer than the 6 measured seconds of a step is cut to them.
    assert_eq!((p.stable.window_s, p.stable.cv), (6, 0.03));
}

#[test]
fn bad_sweeps_name_the_field_and_the_fix() {
    for (yaml, field, words) in [
        (
            "{from: 500/s, to: 50/s, factor: 2, slo: {p99: 5ms}}",
            "sweep.from",
            "above sweep.to",
        ),
        (
            "{from: 50/s, to: 500/s, factor: 1, slo: {p99: 5ms}}",
            "sweep.factor",
            "not above 1",
        ),
        (
            "{from: 50/s, to: 500/s, factor: 0.5, slo: {p99: 5ms}}",
            "sweep.factor",
            "not above 1",
        ),
        (
            "{from: 50/s, to: 500/s, step: 0/s, slo: {p99: 5ms}}",
            "sweep.step",
            "below the minimum",
        ),
        (
            "{from: 50/s, to: 500/s, step: -5/s, slo: {p99: 5ms}}",
            "sweep.step",
            "below the minimum",
        ),
        (
            "{from: 50/s, to: 500/s, slo: {p99: 5ms}}",
            "sweep.factor",
            "neither",
        ),
        (
            "{from: 50/s, to: 500/s, factor: 2, step: 5/s, slo: {p99: 5ms}}",
            "sweep.factor",
            "together",
        ),
        ("{from: 50/s, to: 500/s, factor: 2}", "sweep.slo", "missing"),
        (
            "{from: 50/s, to: 500/s, factor: 2, slo: {}}",
            "sweep.slo",
            "missing",
        ),
        (
            "{to: 500/s, factor: 2, slo: {p99: 5ms}}",
            "sweep.from",
            "missing",
        ),
        (
            "{from: fast, to: 500/s, factor: 2, slo: {p99: 5ms}}",
            "sweep.from",
            "is not a rate",
        ),
        (
            "{from: 5/s, to: 500/s, factor: 2, step_time: 0s, slo: {p99: 5ms}}",
            "sweep.step_time",
            "positive",
        ),
        (
            "{from: 5/s, to: 500/s, factor: 2, step_time: 10s, warmup: 10s, slo: {p99: 5ms}}",
            "sweep.warmup",
            "nothing",
        ),
        (
            "{from: 5/s, to: 500/s, factor: 2, step_time: 1s, slo: {p99: 5ms}}",
            "sweep.step_time",
            "at least 2s",
        ),
        (
            "{from: 5/s, to: 500/s, factor: 2, step_time: 1500ms, slo: {p99: 5ms}}",
            "sweep.step_time",
            "whole",
        ),
        (
            "{from: 5/s, to: 500/s, factor: 2, max_dropped: 150%, slo: {p99: 5ms}}",
            "sweep.max_dropped",
            "0% to 100%",
        ),
        (
            "{from: 5/s, to: 500/s, factor: 2, stable: {cv: 0%}, slo: {p99: 5ms}}",
            "sweep.stable.cv",
            "above 0%",
        ),
        (
            "{from: 1/s, to: 1000000/s, step: 1/s, slo: {p99: 5ms}}",
            "sweep",
            "more than 1000 steps",
        ),
    ] {
        let e = SweepPlan::from_block(&block(yaml)).unwrap_err();
        assert!(e.field.starts_with(field), "{yaml}: {e}");
        let text = e.to_string();
        assert!(text.contains(words), "{yaml}: {text}");
        assert!(!e.fix.is_empty(), "{yaml}: a fix is given");
    }
}

#[test]
fn slo_text_parses_and_bad_text_is_named() {
    let s = parse_slo("p99=50ms, error_rate=1%").unwrap();
    assert_eq!(s.p99, Some(Millis(50.0)));
    assert_eq!(s.error_rate, Some(Percent(1.0)));
    assert_eq!(parse_slo("p99=1.5s").unwrap().p99, Some(Millis(1500.0)));
    // A bare number is milliseconds, as in the scenario's block.
    assert_eq!(parse_slo("p99=50").unwrap().p99, Some(Millis(50.0)));
    for (bad, field) in [
        ("p99", "slo"),
        ("p99=fast", "slo p99"),
        ("error_rate=lots", "slo error_rate"),
        ("p95=5ms", "slo"),
    ] {
        let e = parse_slo(bad).unwrap_err();
        assert_eq!(e.field, field, "{bad}: {e}");
        assert!(e.fix.contains("p99=50ms"), "{e}");
    }
}

#[test]
fn flags_override_the_scenarios_block_field_by_field() {
    let scenario = block("{from: 10/s, to: 100/s, step: 10/s, slo: {p99: 5ms}, warmup: 3s}");
    let flags = SweepBlock {
        factor: Some(2.0),
        to: Some(RateText::Text("80/s".into())),
        ..SweepBlock::default()
    };
    let p = SweepPlan::from_block(&scenario.overlaid(&flags)).unwrap();
    assert_eq!(p.rates, [10.0, 20.0, 40.0, 80.0]);
    assert_eq!(p.warmup_s, 3);
}

/// Runs the controller over `seconds` (one delta per second, the rate changes at once);
/// returns the steers that were not `Hold`, with the second they came at.
fn drive(c: &mut SweepController, seconds: &[StatsDelta]) -> Vec<(u64, Steer)> {
    let mut out = Vec::new();
    for (i, d) in seconds.iter().enumerate() {
        let s = i as u64;
        // The second has just ended: load time is a little past its end.
        let steer = c.on_second(s, d, Duration::from_millis(s * 1000 + 1100));
        if steer != Steer::Hold {
            out.push((s, steer));
        }
    }
    out
}

#[test]
fn a_step_is_held_until_stable_after_its_warmup_and_the_knee_is_the_last_step_that_met() {
    let p = plan("{from: 100/s, to: 400/s, step: 100/s, step_time: 20s, warmup: 2s, stable: {window: 3s, cv: 5%}, slo: {p99: 10ms}}");
    let mut c = SweepController::new(p);
    assert_eq!(c.first_rate(), 100.0);
    let mut seconds = Vec::new();
    // Step 1 (100/s): 2 warm-up seconds (a slow one that must not count), then 3 steady ones.
    seconds.push(second(50, 200));
    seconds.push(second(100, 200));
    seconds.extend([second(100, 2), second(100, 2), second(100, 2)]);
    // Second 5 is the change-over second, the first of step 2's 2 warm-up seconds (slow
    // ones that must not count), then 3 steady ones at 200/s, 4 ms.
    seconds.extend([second(150, 900), second(200, 900)]);
    seconds.extend([second(200, 4), second(199, 4), second(201, 4)]);
    // Step 3 (300/s): 20 ms: it breaks the SLO.
    seconds.extend([second(250, 1), second(300, 1)]);
    seconds.extend([second(300, 20), second(300, 20), second(300, 20)]);
    let steers = drive(&mut c, &seconds);
    assert_eq!(
        steers,
        [
            (4, Steer::Rate(200.0)),
            (9, Steer::Rate(300.0)),
            (14, Steer::Done)
        ]
    );
    let r = c.result();
    assert!(r.finished);
    assert_eq!(r.steps.len(), 3);
    let s1 = &r.steps[0];
    assert_eq!((s1.requests, s1.seconds, s1.stable), (300, 3, true));
    assert_eq!(s1.achieved_rate, 100.0);
    // Exact: the warm-up's 200 ms requests are not in the step.
    let l = s1.latency_ms.unwrap();
    assert!(l.p999 < 2.1, "{l:?}");
    assert_eq!(s1.verdict, "met");
    let s2 = &r.steps[1];
    assert_eq!((s2.offered_rate, s2.requests, s2.seconds), (200.0, 600, 3));
    assert!(s2.latency_ms.unwrap().p99 < 4.1);
    let s3 = &r.steps[2];
    assert!(s3.verdict.starts_with("broke: p99 20."), "{}", s3.verdict);
    assert_eq!(r.knee.as_ref(), Some(s2));
    assert!(r.success());
    let table = r.table();
    assert!(
        table.contains("<- knee") && table.contains("broke: p99"),
        "{table}"
    );
}

#[test]
fn an_unstable_step_ends_at_its_step_time_and_every_step_met_is_a_success() {
    let p = plan("{from: 10/s, to: 20/s, step: 10/s, step_time: 5s, warmup: 1s, stable: {window: 3s, cv: 1%}, slo: {p99: 10ms}}");
    let mut c = SweepController::new(p);
    // Step 1 swings (cv far above 1 %) and ends after 5 seconds, 4 measured.
    let mut seconds = vec![
        second(10, 1),
        second(5, 1),
        second(15, 1),
        second(5, 1),
        second(15, 1),
    ];
    // The change-over second (step 2's one warm-up second), then steady.
    seconds.extend([second(12, 1), second(20, 1), second(20, 1), second(20, 1)]);
    let steers = drive(&mut c, &seconds);
    assert_eq!(steers, [(4, Steer::Rate(20.0)), (8, Steer::Done)]);
    let r = c.result();
    assert_eq!((r.steps[0].stable, r.steps[0].seconds), (false, 4));
    assert!(r.steps[0].cv_percent.unwrap() > 1.0);
    assert_eq!((r.steps[1].stable, r.steps[1].seconds), (true, 3));
    assert_eq!(r.ended, "every step met the SLO");
    assert_eq!(r.knee.as_ref(), Some(&r.steps[1]));
    assert!(r.success());
}

#[test]
fn a_first_step_that_breaks_leaves_no_knee_and_drops_and_errors_break_it() {
    let p = plan("{from: 10/s, to: 20/s, step: 10/s, step_time: 3s, warmup: 1s, stable: {window: 2s}, slo: {p99: 10ms, error_rate: 1%}, max_dropped: 5%}");
    let mut c = SweepController::new(p.clone());
    let seconds = [
        second(10, 1),
        second_with(10, 1, 1, 0),
        second_with(10, 1, 0, 0),
    ];
    assert_eq!(drive(&mut c, &seconds), [(2, Steer::Done)]);
    let r = c.result();
    assert_eq!(r.steps[0].errors, 1);
    assert!(
        r.steps[0].verdict.contains("error rate 5.00% > 1%"),
        "{}",
        r.steps[0].verdict
    );
    assert_eq!(r.knee, None);
    assert!(!r.success());
    let mut c = SweepController::new(p);
    let seconds = [
        second(10, 1),
        second_with(9, 1, 0, 1),
        second_with(9, 1, 0, 1),
    ];
    drive(&mut c, &seconds);
    let r = c.result();
    assert_eq!((r.steps[0].dropped, r.steps[0].arrivals), (2, 20));
    assert!(
        r.steps[0]
            .verdict
            .contains("dropped 10.00% of arrivals > 5%"),
        "{}",
        r.steps[0].verdict
    );
}

#[test]
fn a_sweep_cut_short_says_so_and_names_no_knee() {
    let p =
        plan("{from: 10/s, to: 20/s, step: 10/s, step_time: 30s, warmup: 1s, slo: {p99: 10ms}}");
    let mut c = SweepController::new(p);
    drive(&mut c, &[second(10, 1), second(10, 1)]);
    let r = c.result();
    assert!(!r.finished && r.knee.is_none() && r.steps.is_empty());
    assert!(r.ended.contains("did not finish"), "{}", r.ended);
    assert!(!r.success());
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["knee"].is_null());
    assert!(json["steps"].as_array().unwrap().is_empty());
}

#[test]
fn a_step_is_held_at_most_its_step_time_counting_its_change_over_second() {
    // Never stable (cv 1 % of a swinging rate): every step ends at its step time.
    let p = plan("{from: 10/s, to: 40/s, step: 10/s, step_time: 4s, warmup: 1s, stable: {window: 2s, cv: 1%}, slo: {p99: 10ms}}");
    let mut c = SweepController::new(p);
    let swing = |i: usize| second(if i.is_multiple_of(2) { 5 } else { 15 }, 1);
    let seconds: Vec<StatsDelta> = (0..16).map(swing).collect();
    let steers = drive(&mut c, &seconds);
    // Seconds 0-3, 4-7, 8-11, 12-15: four seconds each, the change-over second included.
    assert_eq!(
        steers,
        [
            (3, Steer::Rate(20.0)),
            (7, Steer::Rate(30.0)),
            (11, Steer::Rate(40.0)),
            (15, Steer::Done)
        ]
    );
    let r = c.result();
    // The first step measures after its 1 s warm-up; later ones after their change-over
    // second, which is their warm-up.
    let measured: Vec<u64> = r.steps.iter().map(|s| s.seconds).collect();
    assert_eq!(measured, [3, 3, 3, 3]);
    // The default warm-up is shortened so that a 4 s step still measures two seconds.
    let p = plan("{from: 10/s, to: 40/s, step: 10/s, step_time: 4s, slo: {p99: 10ms}}");
    assert_eq!(p.warmup_s, 2);
}

#[test]
fn a_sweep_cut_short_after_a_step_met_names_that_step_as_the_knee_so_far() {
    let p = plan("{from: 10/s, to: 20/s, step: 10/s, step_time: 3s, warmup: 1s, stable: {window: 2s}, slo: {p99: 10ms}}");
    let mut c = SweepController::new(p);
    // Step 1 is stable and met at second 2; the run ends during step 2.
    let steers = drive(
        &mut c,
        &[second(10, 1), second(10, 1), second(10, 1), second(15, 1)],
    );
    assert_eq!(steers, [(2, Steer::Rate(20.0))]);
    let r = c.result();
    assert!(!r.finished);
    assert_eq!(r.knee.as_ref(), Some(&r.steps[0]));
    assert!(r.ended.contains("did not finish"), "{}", r.ended);
    // Not finished: still a failure (exit 1), though the knee so far is named.
    assert!(!r.success());
    assert!(
        r.table().contains("knee so far: 10.0/s offered"),
        "{}",
        r.table()
    );
}
