//! The INI cluster configuration; what parses must render and parse to the same.
#![no_main]

use arakoon_node::config::ClusterConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = ClusterConfig::parse(text, "fuzz.ini") {
        let again = ClusterConfig::parse(&config.to_ini(), "again.ini");
        assert_eq!(again.as_ref(), Ok(&config), "{}", config.to_ini());
    }
});
