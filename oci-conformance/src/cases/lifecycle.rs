//! runtime.md: state, lifecycle, operations and their error cases.

use super::case;
use crate::case::{Case, Ctx, Level::*};
use crate::reaper::Exit;

pub fn cases() -> Vec<Case> {
    vec![case(
        "lifecycle.smoke",
        "runtime.md#lifecycle",
        Must,
        "create, start, the program runs and exits, state is stopped, delete removes it",
        smoke,
    )
    .mutant("state:/status=\"running\"")]
}

fn smoke(ctx: &mut Ctx) {
    let Some(pid) = ctx.create_ok() else { return };
    let st = ctx.status();
    ctx.check_eq("state after create is `created`", st.as_str(), "created");
    let out = ctx.start();
    ctx.check("start succeeds", out.ok(), out.describe());
    let exit = ctx.wait_exit(pid);
    ctx.check_eq("the program runs to exit code 0", exit, Some(Exit::Code(0)));
    let st = ctx.status();
    ctx.check_eq(
        "state after the program exits is `stopped`",
        st.as_str(),
        "stopped",
    );
    let out = ctx.delete();
    ctx.check(
        "delete of a stopped container succeeds",
        out.ok(),
        out.describe(),
    );
    let gone = ctx.state();
    ctx.check(
        "state of a deleted container is an error",
        gone.is_err(),
        "state still answers after delete",
    );
}
