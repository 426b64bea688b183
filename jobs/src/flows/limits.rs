//! What one run may hold, so that a flow cannot make the server keep or rewrite megabytes per
//! step: a loop's items, one step's output, and the run's whole state (variables, step outputs,
//! the items of the loops it is in), which is written after every step. Breaking one fails the
//! step with the limit named, as any step error (so `onError: continue` applies).

use serde_json::Value;

use super::state::RunState;
use crate::validation::json_size;

/// Items a loop may go over.
pub const MAX_LOOP_ITEMS: usize = 1_000;
/// Bytes of one step's output, as JSON (an http_request body is cut at 200 KiB before).
pub const MAX_STEP_OUTPUT: usize = 256 * 1024;
/// Bytes of a run's state, as JSON.
pub const MAX_RUN_STATE: usize = 1024 * 1024;
/// Runs in a chain of flows that call each other's webhooks (a flow calling its own, in a
/// loop): the webhook refuses the request that would start one more.
pub const MAX_HOPS: u32 = 5;
/// The header that carries a chain's length from an http_request step to a flow webhook.
pub const HOP_HEADER: &str = "x-waflow-hop";

/// Whether a loop may go over `items`, and the state may take them in.
pub fn loop_items(items: &[Value], state: &RunState) -> Result<(), String> {
    if items.len() > MAX_LOOP_ITEMS {
        return Err(format!(
            "items: {} items; a loop goes over at most {MAX_LOOP_ITEMS}",
            items.len()
        ));
    }
    room_for(json_size(&items), state)
}

/// Whether `output` may be kept as a step's output (and, once more, as variables when
/// `also_vars`) in `state`.
pub fn step_output(output: &Value, state: &RunState, also_vars: bool) -> Result<(), String> {
    let size = json_size(output);
    if size > MAX_STEP_OUTPUT {
        return Err(format!(
            "its output is {} KiB; a step's output is at most {} KiB",
            size / 1024,
            MAX_STEP_OUTPUT / 1024
        ));
    }
    room_for(if also_vars { size * 2 } else { size }, state)
}

fn room_for(adding: usize, state: &RunState) -> Result<(), String> {
    let size = json_size(state) + adding;
    if size > MAX_RUN_STATE {
        return Err(format!(
            "the run would hold {} KiB of variables, step outputs and loop items; a run holds \
             at most {} KiB",
            size / 1024,
            MAX_RUN_STATE / 1024
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn limits_name_what_broke_them() {
        let state = RunState::new();
        let many: Vec<Value> = (0..1001).map(|i| json!(i)).collect();
        assert!(
            loop_items(&many, &state)
                .unwrap_err()
                .contains("at most 1000")
        );
        assert!(loop_items(&many[..10], &state).is_ok());
        let big = json!("x".repeat(300 * 1024));
        assert!(
            step_output(&big, &state, false)
                .unwrap_err()
                .contains("at most 256 KiB")
        );
        let mut full = RunState::new();
        for i in 0..5 {
            full.steps
                .insert(format!("s{i}"), json!("y".repeat(200 * 1024)));
        }
        let fits = json!("z".repeat(100 * 1024));
        assert!(
            step_output(&fits, &full, false)
                .unwrap_err()
                .contains("at most 1024 KiB")
        );
    }
}
