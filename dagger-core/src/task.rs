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
