//! The template sandbox for the end-to-end tests: the test binary cannot be started again as
//! `waflow sandbox`, so the in-process servers of the tests start this instead. It is what
//! `waflow sandbox` runs.

fn main() -> std::process::ExitCode {
    match waflow_jobs::sandbox::child::serve() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: sandbox: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
