//! `oci-mutant --mutation SPEC --real RUNTIME ARGS...`: runs RUNTIME with
//! exactly one thing broken (see `oci_conformance::mutant`).

use oci_conformance::mutant::{self, Mutation};
use std::process::{Command, Stdio};

fn run() -> Result<i32, String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut spec = None;
    let mut real = None;
    while args.len() >= 2 && (args[0] == "--mutation" || args[0] == "--real") {
        let v = args.remove(1);
        match args.remove(0).as_str() {
            "--mutation" => spec = Some(v),
            _ => real = Some(v),
        }
    }
    let spec = spec.ok_or("missing --mutation")?;
    let real = real.ok_or("missing --real")?;
    let muts = mutant::parse(&spec)?;
    let cmd = mutant::command_of(&args).unwrap_or("").to_string();
    for m in &muts {
        if matches!(m, Mutation::Noop(c) if *c == cmd) {
            return Ok(0);
        }
    }
    if cmd == "create" || cmd == "run" {
        // A missing or invalid config is left for the real runtime to refuse.
        let path = format!("{}/config.json", mutant::bundle_of(&args));
        let parsed = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        if let Some(mut config) = parsed {
            mutant::mutate_config(&mut config, &muts);
            let text = serde_json::to_string(&config).map_err(|e| e.to_string())?;
            std::fs::write(&path, text).map_err(|e| format!("write {path}: {e}"))?;
        }
    }
    let patch_state = cmd == "state" && muts.iter().any(|m| matches!(m, Mutation::State(..)));
    let mut c = Command::new(&real);
    c.args(&args);
    if patch_state {
        c.stdout(Stdio::piped());
    }
    let child = c.spawn().map_err(|e| format!("run {real}: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait {real}: {e}"))?;
    let mut code = out.status.code().unwrap_or(1);
    if patch_state {
        let mut state: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("parse state output: {e}"))?;
        mutant::mutate_state(&mut state, &muts);
        println!("{state}");
    }
    for m in &muts {
        if let Mutation::Exit(c, v) = m {
            if *c == cmd {
                code = *v;
            }
        }
    }
    Ok(code)
}

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("oci-mutant: {e}");
            std::process::exit(125)
        }
    }
}
