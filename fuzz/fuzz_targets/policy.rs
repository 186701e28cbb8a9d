//! Policy file loading from text: any input loads or gives an error,
//! never a panic.
#![no_main]

use copyguard::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = Policy::from_toml_str(text) {
        let _ = policy.summary();
        for class in policy.classes() {
            let _ = class.limits.pseudonymizes("email");
        }
        let _ = policy.classify_role("dev_alice");
    }
});
