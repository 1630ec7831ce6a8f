use super::Globals;
use crate::container::Container;
use crate::ps;
use crate::Result;

#[derive(clap::Args)]
pub struct Args {
    /// table (runs the host's ps) or json (the pids).
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    pub id: String,
    /// Arguments for ps (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    let pids = crate::lifecycle::processes(&c)?;
    if a.format == "json" {
        println!("{}", ps::json(&pids)?);
    } else {
        print!("{}", ps::table(&pids, &a.ps_args)?);
    }
    Ok(0)
}
