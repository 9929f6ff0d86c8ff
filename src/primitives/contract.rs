//! The Rhai API as a contract: `deprecated(old, new)` warns once per run that a form still works
//! but has a successor; `defines(module, name, arity)` asks a module (found as `import` finds
//! it) whether it defines a public function, so the workflow can call a team's strategy module
//! written for the old positional API; `call_home(f, args)` calls a function pointer with the
//! functions of the file that made it first in line, so a team's override handed to
//! `workflow::run` reaches the team's own `staging`, not the workflow's.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use rhai::{Dynamic, EvalAltResult, FnAccess, FnPtr, NativeCallContext};

use crate::session::Shared;

pub fn register(engine: &mut rhai::Engine, session: &Shared) {
    let s = session.clone();
    let said: Rc<RefCell<HashSet<String>>> = Rc::default();
    engine.register_fn("deprecated", move |old: &str, new: &str| {
        if said.borrow_mut().insert(old.to_string()) {
            s.warn(&format!(
                "`{old}` is deprecated and will be removed: use `{new}`"
            ));
            s.record(crate::journal::Record::Deprecated {
                old: old.to_string(),
                new: new.to_string(),
            });
        }
    });
    engine.register_fn(
        "defines",
        |ctx: NativeCallContext,
         module: &str,
         name: &str,
         arity: i64|
         -> Result<bool, Box<EvalAltResult>> {
            let m = ctx.engine().module_resolver().resolve(
                ctx.engine(),
                ctx.call_source(),
                module,
                ctx.call_position(),
            )?;
            Ok(
                m.get_script_fn(name, usize::try_from(arity).unwrap_or(usize::MAX))
                    .is_some_and(|f| f.access == FnAccess::Public),
            )
        },
    );
    engine.register_fn(
        "call_home",
        #[allow(deprecated)] // Rhai's stored-context API: "volatile", not deprecated
        |ctx: NativeCallContext,
         f: FnPtr,
         args: rhai::Array|
         -> Result<Dynamic, Box<EvalAltResult>> {
            // Rhai looks a name up in the most recently entered file first: inside a module's
            // function that is the module, whatever file the pointer came from. Put the file
            // that defines the pointer's function (a closure's body, or a named function: the
            // first file defining it, the runbook before its modules) last, then call.
            let mut store = ctx.store_data();
            let arity = f.curry().len() + args.len();
            if let Some(i) = store
                .global
                .lib
                .iter()
                .position(|m| m.get_script_fn(f.fn_name(), arity).is_some())
            {
                let home = store.global.lib.remove(i);
                store.global.lib.push(home);
            }
            let here = NativeCallContext::from_stored_data(ctx.engine(), &store);
            f.call_raw(&here, None, args)
        },
    );
}
