//! The reports of a violation: text, JSON and the self-contained HTML timeline.

use arakoon_checker::import::{read, Format};
use arakoon_checker::{check_raw, Budget, ModelKind};

/// Knossos's rethink-fail-minimal: the register is 0, a write of 4 runs, and a concurrent read
/// sees 3, which nobody wrote; a read of 4 follows.
const HISTORY: &str = "[{:type :invoke, :f :write, :value 0, :process 0}
 {:type :ok, :f :write, :value 0, :process 0}
 {:type :invoke, :f :read, :value nil, :process 1}
 {:type :invoke, :f :write, :value 4, :process 2}
 {:type :ok, :f :read, :value 3, :process 1}
 {:type :ok, :f :write, :value 4, :process 2}
 {:type :invoke, :f :read, :value nil, :process 3}
 {:type :ok, :f :read, :value 4, :process 3}]";

fn checked() -> arakoon_checker::Checked {
    let raw = read(HISTORY, Format::Edn).expect("a valid history");
    check_raw(ModelKind::CasRegister, None, &raw, &Budget::default()).expect("a register history")
}

#[test]
fn the_text_names_the_operation_the_prefix_and_the_counterexample() {
    let text = checked().text();
    assert!(text.starts_with("NOT LINEARIZABLE (4 operations, 1 partition"), "{text}");
    assert!(
        text.contains("cannot be placed: #1 line 3  process 1  [2, 4]  read -> 3  ok"),
        "{text}"
    );
    assert!(text.contains("the model refuses it there"), "{text}");
    // The read of 3 alone, with both writes as context; the later read of 4 is cut.
    assert!(text.contains("Counterexample: 1 of the 4 operations"), "{text}");
    assert!(text.contains("not even if these 2 may or may not"), "{text}");
    assert!(!text.contains("read -> 4  ok"), "the later read is not part of it:\n{text}");
}

#[test]
fn the_json_report_carries_the_same_facts() {
    let json = checked().json();
    assert_eq!(json["verdict"], "not-linearizable");
    let v = &json["violation"];
    assert_eq!(v["stuck"]["blocking"], 1);
    assert_eq!(v["stuck"]["refused"], true);
    assert_eq!(v["counterexample"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["counterexample"][0]["text"], "read -> 3");
    assert_eq!(v["counterexample"][0]["line"], 3);
    let context: Vec<&str> = v["context"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|o| o["text"].as_str())
        .collect();
    assert_eq!(context, vec!["write 0", "write 4"]);
    assert_eq!(v["counterexample_minimal"], true);
}

#[test]
fn the_html_timeline_stands_alone_with_a_lane_per_process() {
    let html = checked().html("rethink-fail-minimal");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    // Nothing to fetch: no external script, style, image or font.
    for needle in ["http://", "https://", "src=", "<link", "@import"] {
        let found = html.contains(needle) && !(needle == "http://" && only_svg_namespace(&html));
        assert!(!found, "the page refers to {needle}");
    }
    for p in 0..4 {
        assert!(html.contains(&format!(">process {p}<")), "no lane for process {p}");
    }
    assert!(html.contains("class=\"op ok blocking"), "the failing read is marked");
    assert!(html.contains("op ok faded"), "the context is faded");
    assert!(html.contains("state after: 4"), "states show on hover");
    assert!(html.contains("&gt; 3"), "labels are escaped: read -&gt; 3");
}

/// The only `http://` a page may hold is the SVG namespace, which browsers do not fetch.
fn only_svg_namespace(html: &str) -> bool {
    html.matches("http://").count() == html.matches("http://www.w3.org/2000/svg").count()
}

#[test]
fn a_linearizable_history_draws_every_operation() {
    let good = "[{:type :invoke, :f :write, :value 1, :process 0}
 {:type :ok, :f :write, :value 1, :process 0}
 {:type :invoke, :f :read, :value nil, :process 1}
 {:type :ok, :f :read, :value 1, :process 1}]";
    let raw = read(good, Format::Edn).expect("a valid history");
    let checked = check_raw(ModelKind::CasRegister, None, &raw, &Budget::default()).expect("ok");
    assert!(checked.text().starts_with("LINEARIZABLE (2 operations"));
    let html = checked.html("good");
    assert!(html.contains("v-linearizable"));
    assert_eq!(html.matches("<g class=\"op").count(), 2);
}
