//! Task metadata: what `#[task]` records about a function at compile time, and the
//! registry of every non-generic task linked into the binary.

use std::fmt;

/// A node type of the task graph. `#[task]` implements it for a braced struct that has
/// the same name as the function, so `use my_mod::load;` imports both.
pub trait Task {
    /// Compile-time metadata of the task.
    const META: TaskMeta;
}

/// A place in the source code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    file: &'static str,
    line: u32,
    column: u32,
}

impl Location {
    #[doc(hidden)]
    pub const fn __new(file: &'static str, line: u32, column: u32) -> Self {
        Location { file, line, column }
    }
    /// The file, as `file!()` spells it.
    pub const fn file(&self) -> &'static str {
        self.file
    }
    /// The line, starting at 1.
    pub const fn line(&self) -> u32 {
        self.line
    }
    /// The column, starting at 1.
    pub const fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One parameter of a task function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    name: &'static str,
    ty: &'static str,
}

impl Param {
    #[doc(hidden)]
    pub const fn __new(name: &'static str, ty: &'static str) -> Self {
        Param { name, ty }
    }
    /// The parameter's pattern as written (usually its name).
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// The parameter's type as written.
    pub const fn ty(&self) -> &'static str {
        self.ty
    }
}

/// Compile-time metadata of a `#[task]` function.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TaskMeta {
    name: &'static str,
    function: &'static str,
    module_path: &'static str,
    location: Location,
    params: &'static [Param],
    output: &'static str,
    generic: bool,
}

impl TaskMeta {
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn __new(
        name: &'static str,
        function: &'static str,
        module_path: &'static str,
        location: Location,
        params: &'static [Param],
        output: &'static str,
        generic: bool,
    ) -> Self {
        TaskMeta {
            name,
            function,
            module_path,
            location,
            params,
            output,
            generic,
        }
    }
    /// The task's name: the function's name, or `#[task(name = "...")]`.
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// The function's identifier.
    pub const fn function(&self) -> &'static str {
        self.function
    }
    /// The module that defines the function (`module_path!()`).
    pub const fn module_path(&self) -> &'static str {
        self.module_path
    }
    /// Where the function is defined.
    pub const fn location(&self) -> Location {
        self.location
    }
    /// The parameters, in order.
    pub const fn params(&self) -> &'static [Param] {
        self.params
    }
    /// The return type as written (`()` when there is none).
    pub const fn output(&self) -> &'static str {
        self.output
    }
    /// Whether the function has type or const parameters (such tasks are not registered).
    pub const fn is_generic(&self) -> bool {
        self.generic
    }
    /// `module::path::function`.
    pub fn qualified_name(&self) -> String {
        format!("{}::{}", self.module_path, self.function)
    }
}

impl fmt::Debug for TaskMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.name)
            .field("function", &self.qualified_name())
            .field("params", &self.params)
            .field("output", &self.output)
            .field("location", &self.location)
            .finish()
    }
}

/// An entry of the task registry, submitted by `#[task]` through `inventory`.
#[doc(hidden)]
pub struct RegisteredTask(pub &'static TaskMeta);

inventory::collect!(RegisteredTask);

/// Every non-generic `#[task]` linked into this binary, sorted by name.
///
/// This is how a remote worker finds a task by name.
pub fn registry() -> Vec<&'static TaskMeta> {
    let mut tasks: Vec<&'static TaskMeta> = inventory::iter::<RegisteredTask>
        .into_iter()
        .map(|entry| entry.0)
        .collect();
    tasks.sort_by(|a, b| a.name.cmp(b.name).then(a.module_path.cmp(b.module_path)));
    tasks
}

/// The registered task called `name`, if exactly one has that name.
pub fn find_task(name: &str) -> Option<&'static TaskMeta> {
    let mut found = inventory::iter::<RegisteredTask>
        .into_iter()
        .filter(|e| e.0.name == name);
    match (found.next(), found.next()) {
        (Some(entry), None) => Some(entry.0),
        _ => None,
    }
}

/// A task's name and where it was spawned, for errors and observers. The name is made
/// only when asked for (it comes from the closure's type name, which takes parsing).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskInfo {
    pub(crate) name: fn() -> &'static str,
    pub(crate) spawned_at: &'static std::panic::Location<'static>,
}

impl TaskInfo {
    /// The info of a task whose body is of type `F`, spawned at `location`.
    pub(crate) fn of<F>(location: &'static std::panic::Location<'static>) -> TaskInfo {
        TaskInfo {
            name: name_of::<F>,
            spawned_at: location,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        (self.name)()
    }

    pub(crate) fn location(&self) -> Location {
        let at = self.spawned_at;
        Location::__new(at.file(), at.line(), at.column())
    }
}

/// A short name for a closure or function: its type's path without generics or closure
/// markers (`my_crate::load`, `my_crate::main`, `my_crate::table::DTable::sort`).
fn name_of<F>() -> &'static str {
    short_name(std::any::type_name::<F>())
}

/// `full` without generic arguments and closure markers; `<impl T>` and `<T as Trait>`
/// become `T`'s last segment. Names with angle brackets are cleaned once per type and
/// kept (there are as many as closure types in the program).
fn short_name(full: &'static str) -> &'static str {
    let trim = |name: &'static str| {
        let name = name.trim_end_matches("::{{closure}}");
        name.strip_suffix("::{{closure}}").unwrap_or(name)
    };
    if !full.contains('<') {
        return trim(full);
    }
    type Cleaned = std::collections::HashMap<(usize, usize), &'static str>;
    static CLEANED: std::sync::OnceLock<std::sync::Mutex<Cleaned>> = std::sync::OnceLock::new();
    let mut cleaned = CLEANED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // Keyed by where the name is: a type's name is one static string.
    let key = (full.as_ptr() as usize, full.len());
    if let Some(&short) = cleaned.get(&key) {
        return short;
    }
    let short = trim(Box::leak(without_generics(full).into_boxed_str()));
    cleaned.insert(key, short);
    short
}

fn without_generics(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut rest = full;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let mut depth = 0;
        let close = rest[open..]
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '<' => 1,
                    '>' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| open + i);
        let inside = &rest[(open + 1).min(close)..close];
        // A path segment of its own (`::<impl T>::`, `<T as Trait>::`) names a type;
        // generic arguments after a name are dropped.
        if out.is_empty() || out.ends_with("::") {
            let ty = inside.strip_prefix("impl ").unwrap_or(inside);
            let ty = ty.split(" as ").next().unwrap_or(ty);
            let ty = &ty[..ty.find('<').unwrap_or(ty.len())];
            out.push_str(ty.rsplit("::").next().unwrap_or(ty));
        }
        rest = rest.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn short_names_keep_the_path_and_drop_generics_and_closures() {
        assert_eq!(short_name("app::load"), "app::load");
        assert_eq!(short_name("app::main::{{closure}}"), "app::main");
        assert_eq!(
            short_name("app::f<u32>::{{closure}}::{{closure}}"),
            "app::f"
        );
        assert_eq!(
            short_name("dagger_table::sort::<impl dagger_table::table::DTable>::sort::{{closure}}"),
            "dagger_table::sort::DTable::sort"
        );
        assert_eq!(
            short_name("m::<impl m::Wrap<alloc::vec::Vec<u8>>>::go::{{closure}}"),
            "m::Wrap::go"
        );
        assert_eq!(short_name("<app::S as app::T>::run::{{closure}}"), "S::run");
    }
}
