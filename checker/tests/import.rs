//! The importers: each format reads into the same operations, and a malformed history is
//! rejected with the line at fault and the reason, never with a panic.

use arakoon_checker::import::{read, write_jsonl, Format, RawHistory};
use arakoon_checker::{HistoryError, Outcome, Value};

fn read_ok(text: &str, format: Format) -> RawHistory {
    read(text, format).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The line and reason of the error reading `text`.
fn read_err(text: &str, format: Format) -> (usize, String) {
    match read(text, format) {
        Ok(h) => panic!("accepted a bad history ({} ops):\n{text}", h.len()),
        Err(HistoryError::AtLine { line, why }) => (line, why.to_string()),
        Err(other) => panic!("an error without a line: {other}"),
    }
}

/// (process, f, value, output, outcome, has a return) of every operation.
fn summary(h: &RawHistory) -> Vec<(u64, String, String, Option<String>, Outcome, bool)> {
    h.ops()
        .iter()
        .map(|op| {
            (
                op.process,
                op.input.f.clone(),
                op.input.value.to_string(),
                op.output.as_ref().map(Value::to_string),
                op.outcome,
                op.ret.is_some(),
            )
        })
        .collect()
}

const JSONL: &str = r#"{"process": 0, "type": "call", "f": "write", "value": 1}
{"process": 1, "type": "call", "f": "cas", "value": [1, 2]}
{"process": 0, "type": "ok", "f": "write"}

{"process": 1, "type": "fail", "f": "cas"}
{"process": 2, "type": "call", "f": "read", "value": null}
{"process": 2, "type": "ok", "value": 1}
{"process": 3, "type": "call", "f": "write", "value": 4}
"#;

const EDN: &str = "; a comment\n[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 1, :type :invoke, :f :cas, :value [1 2]}
 {:process :nemesis, :type :info, :f :start, :value nil}
 {:process 0, :type :ok, :f :write, :value 1}
 {:process 1, :type :fail, :f :cas, :value [1 2]}
 {:process 2, :type :invoke, :f :read, :value nil}
 {:process 2, :type :ok, :f :read, :value 1}
 {:process 3, :type :invoke, :f :write, :value 4}]";

const LOG: &str = "INFO  jepsen.util - 0\t:invoke\t:write\t1
INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]
INFO jepsen.util - :nemesis :info :start nil
INFO  jepsen.util - 0   :ok     :write  1
INFO  jepsen.util - 1\t:fail\t:cas\t[1 2]

INFO  jepsen.util - 2\t:invoke\t:read\tnil
INFO  jepsen.util - 2\t:ok\t:read\t1
INFO  jepsen.util - 3\t:invoke\t:write\t4
";

#[test]
fn the_three_formats_read_into_the_same_operations() {
    let jsonl = read_ok(JSONL, Format::Jsonl);
    let edn = read_ok(EDN, Format::Edn);
    let log = read_ok(LOG, Format::JepsenLog);
    let expected = vec![
        (0, "write".to_string(), "1".to_string(), Some("1".to_string()), Outcome::Ok, true),
        (1, "cas".into(), "[1 2]".into(), Some("[1 2]".into()), Outcome::Fail, true),
        (2, "read".into(), "nil".into(), Some("1".into()), Outcome::Ok, true),
        // Still open at the end: the client crashed; unknown outcome, no return.
        (3, "write".into(), "4".into(), None, Outcome::Unknown, false),
    ];
    // Completions in JSON lines need not repeat the value: only the outputs differ there.
    let mut from_jsonl = summary(&jsonl);
    from_jsonl[0].3 = Some("1".into());
    from_jsonl[1].3 = Some("[1 2]".into());
    assert_eq!(from_jsonl, expected);
    assert_eq!(summary(&edn), expected);
    assert_eq!(summary(&log), expected);
    // Lines: the call of each operation, as written in the file (blank lines count).
    assert_eq!((0..4).map(|i| jsonl.line(i).unwrap()).collect::<Vec<_>>(), vec![1, 2, 6, 8]);
    assert_eq!((0..4).map(|i| edn.line(i).unwrap()).collect::<Vec<_>>(), vec![2, 3, 7, 9]);
    assert_eq!((0..4).map(|i| log.line(i).unwrap()).collect::<Vec<_>>(), vec![1, 2, 7, 9]);
}

#[test]
fn the_order_of_events_is_the_clock_unless_times_are_given() {
    let h = read_ok(EDN, Format::Edn);
    // The write returned (event 2 of the client events) before the read was called (event 4).
    assert!(h.ops()[0].ret.unwrap() < h.ops()[2].call);
    // The cas overlapped the write.
    assert!(h.ops()[1].call < h.ops()[0].ret.unwrap());

    let timed = r#"{"process": 0, "type": "call", "f": "write", "value": 1, "time": 100}
{"process": 1, "type": "call", "f": "read", "time": 100}
{"process": 0, "type": "ok", "time": 100}
{"process": 1, "type": "ok", "value": 1, "time": 250}"#;
    let h = read_ok(timed, Format::Jsonl);
    assert_eq!((h.ops()[0].call, h.ops()[0].ret), (100, Some(100)), "zero duration is fine");
    assert_eq!((h.ops()[1].call, h.ops()[1].ret), (100, Some(250)));
}

#[test]
fn formats_are_detected_from_the_first_line() {
    assert_eq!(Format::detect(JSONL), Format::Jsonl);
    assert_eq!(Format::detect(EDN), Format::Edn);
    assert_eq!(Format::detect(LOG), Format::JepsenLog);
    assert_eq!(Format::detect("{:process 1, :type :invoke}"), Format::Edn);
    assert_eq!(Format::detect("\n{ \"process\": 1}"), Format::Jsonl);
    assert_eq!(Format::detect(""), Format::Edn);
}

#[test]
fn a_return_without_a_call_is_rejected_with_its_line() {
    let text = "{\"process\": 0, \"type\": \"call\", \"f\": \"read\"}\n{\"process\": 0, \"type\": \"ok\", \"value\": 1}\n{\"process\": 0, \"type\": \"ok\", \"value\": 1}";
    let (line, reason) = read_err(text, Format::Jsonl);
    assert_eq!(line, 3);
    assert!(reason.contains("without a call"), "{reason}");

    let log = "INFO jepsen.util - 4\t:ok\t:read\t3";
    let (line, reason) = read_err(log, Format::JepsenLog);
    assert_eq!(line, 1);
    assert!(reason.contains("process 4 without a call"), "{reason}");
}

#[test]
fn a_process_with_two_open_calls_is_rejected_naming_both_lines() {
    let edn = "[{:process 1, :type :invoke, :f :read}\n{:process 2, :type :invoke, :f :read}\n{:process 1, :type :invoke, :f :write, :value 3}]";
    let (line, reason) = read_err(edn, Format::Edn);
    assert_eq!(line, 3);
    assert!(reason.contains("still open") && reason.contains("line 1"), "{reason}");
}

#[test]
fn unparsable_lines_are_rejected_with_their_line() {
    let cases: Vec<(&str, Format, usize, &str)> = vec![
        ("{\"process\": 0, \"type\": \"call\", \"f\": \"read\"}\n{oops", Format::Jsonl, 2, "not JSON"),
        ("[1, 2]", Format::Jsonl, 1, "not a JSON object"),
        ("{\"type\": \"call\", \"f\": \"read\"}", Format::Jsonl, 1, "no \"process\""),
        ("{\"process\": -1, \"type\": \"call\", \"f\": \"read\"}", Format::Jsonl, 1, "neither"),
        ("{\"process\": 0, \"type\": \"begin\", \"f\": \"read\"}", Format::Jsonl, 1, "\"type\""),
        ("{\"process\": 0, \"type\": \"call\"}", Format::Jsonl, 1, "without a function"),
        ("{\"process\": 0, \"type\": \"call\", \"f\": \"w\", \"value\": 1.5}", Format::Jsonl, 1, "64-bit"),
        (
            "{\"process\": 0, \"type\": \"call\", \"f\": \"w\", \"time\": 1}\n{\"process\": 0, \"type\": \"ok\"}",
            Format::Jsonl,
            2,
            "every line or on none",
        ),
        (
            "{\"process\": 0, \"type\": \"call\", \"f\": \"w\", \"time\": 9}\n{\"process\": 0, \"type\": \"ok\", \"time\": 3}",
            Format::Jsonl,
            2,
            "before its call",
        ),
        ("[{:process 0 :type :invoke :f :read}\n {:process 0 :type :ok :f :write}]", Format::Edn, 2, "returns write"),
        ("[{:process 0 :type :invoke :f :read}\n 17]", Format::Edn, 2, "operation map"),
        ("[{:process 0 :type :invoke :f :read}\n {:type :ok :f :read}]", Format::Edn, 2, "no :process"),
        ("[{:process 0 :type :invoke :f :read}\n {:process 0 :type :ok :f :read", Format::Edn, 2, "never closed"),
        ("{:process 0 :type :invoke :f :read :value}", Format::Edn, 1, "odd number"),
        ("INFO jepsen.util - 0\t:invoke\t:read\tnil\nWARN something else", Format::JepsenLog, 2, "not a Jepsen"),
        ("INFO jepsen.util - x\t:invoke\t:read\tnil", Format::JepsenLog, 1, "not a number"),
        ("INFO jepsen.util - 0\t:begin\t:read\tnil", Format::JepsenLog, 1, "none of"),
        ("INFO jepsen.util - 0\t:invoke\t:read\t[1 2", Format::JepsenLog, 1, "never closed"),
        ("INFO jepsen.util - 0\t:invoke", Format::JepsenLog, 1, "no function"),
    ];
    for (text, format, line, words) in cases {
        let (at, reason) = read_err(text, format);
        assert_eq!(at, line, "{text:?}: {reason}");
        assert!(reason.contains(words), "{text:?}: {reason:?} should say {words:?}");
    }
}

#[test]
fn garbage_of_every_kind_is_an_error_not_a_panic() {
    let samples = [
        "\u{0}\u{1}\u{2}",
        "[[[[[[",
        "}}}}",
        "#",
        "#_",
        ":",
        "\"\\u12",
        "{\"process\": 18446744073709551616}",
        "INFO jepsen.util -",
        "{:process 99999999999999999999999 :type :invoke}",
        "[{:process 0 :type :invoke :f :read} {:process 0 :type :invoke :f :read}]",
    ];
    for text in samples {
        for format in [Format::Jsonl, Format::Edn, Format::JepsenLog] {
            // Only that it returns; most of these are errors.
            let _ = read(text, format);
        }
    }
}

#[test]
fn written_json_lines_read_back_the_same() {
    let edn = read_ok(EDN, Format::Edn);
    let mut out = Vec::new();
    write_jsonl(&edn, &mut out).expect("writing to memory");
    let text = String::from_utf8(out).expect("UTF-8");
    assert_eq!(Format::detect(&text), Format::Jsonl);
    let back = read_ok(&text, Format::Jsonl);
    assert_eq!(summary(&back), summary(&edn));
    let times: Vec<(u64, Option<u64>)> = back.ops().iter().map(|o| (o.call, o.ret)).collect();
    let before: Vec<(u64, Option<u64>)> = edn.ops().iter().map(|o| (o.call, o.ret)).collect();
    assert_eq!(times, before);
}

#[test]
fn the_porcupine_key_value_lines_keep_their_keys() {
    let text = "{:process 0, :type :invoke, :f :append, :key \"7\", :value \"x 0 0 y\"}\n{:process 0, :type :ok, :f :append, :key \"7\", :value \"x 0 0 y\"}\n{:process 1, :type :invoke, :f :get, :key \"7\", :value nil}\n{:process 1, :type :ok, :f :get, :key \"7\", :value \"x 0 0 y\"}";
    let h = read_ok(text, Format::detect(text));
    assert_eq!(h.len(), 2);
    assert_eq!(h.ops()[0].input.key, Some(Value::Str("7".into())));
    assert_eq!(h.ops()[1].output, Some(Value::Str("x 0 0 y".into())));
}

#[test]
fn a_process_that_calls_again_at_the_time_it_returned_reads_back() {
    use arakoon_checker::import::RawCall;
    use arakoon_checker::{History, Operation, Outcome};
    let op = |process: u64, call: u64, ret: u64, f: &str| Operation {
        process,
        call,
        ret: Some(ret),
        input: RawCall { f: f.into(), key: Some(Value::Str("k".into())), value: Value::Nil },
        output: None,
        outcome: Outcome::Ok,
    };
    // Process 0 returns at 20 and calls again at 20; process 1 spans both.
    let h: RawHistory = History::new(vec![
        op(0, 10, 20, "delete"),
        op(0, 20, 30, "delete"),
        op(1, 15, 20, "delete"),
    ])
    .unwrap();
    let mut out = Vec::new();
    write_jsonl(&h, &mut out).unwrap();
    let back = read_ok(&String::from_utf8(out).unwrap(), Format::Jsonl);
    let mut times: Vec<(u64, u64, Option<u64>)> =
        back.ops().iter().map(|o| (o.process, o.call, o.ret)).collect();
    times.sort();
    assert_eq!(times, [(0, 10, Some(20)), (0, 20, Some(30)), (1, 15, Some(20))]);
}
