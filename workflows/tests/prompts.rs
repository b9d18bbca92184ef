//! The prompt templates as an operator edits them: a folder given as `PROMPTS_DIR` replaces
//! the built-in templates file by file, and a broken file is refused at load, naming its
//! path, its line and the variable.

use std::path::Path;

use isocrates_workflows::prompts::{PromptError, Prompts, Template, WriterContext};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn only_error(dir: &Path) -> PromptError {
    let errors = Prompts::load(Some(dir)).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap()
}

const WRITER: &str = "{% block system %}\nWrite plainly.\n{% endblock %}\n{% block prompt %}\nPage: {{ page.title }}\n{% endblock %}\n";

#[test]
fn a_file_in_the_folder_replaces_its_default_and_the_rest_stay_built_in() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "writer.j2", WRITER);
    write(dir.path(), "README.md", "notes, not a template");
    let prompts = Prompts::load(Some(dir.path())).unwrap();
    let writer = prompts.writer(&WriterContext::sample()).unwrap();
    assert_eq!(writer.system, "Write plainly.");
    assert_eq!(writer.prompt, "Page: Invoices");
    assert_eq!(prompts.overrides(), vec![dir.path().join("writer.j2").as_path()]);
    let planner = prompts.sample(Template::Planner).unwrap();
    assert!(planner.system.contains("editor of a technical wiki"), "the built-in planner");
}

#[test]
fn an_unknown_variable_names_the_file_the_line_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "writer.j2", &WRITER.replace("page.title", "page.titel"));
    let error = only_error(dir.path());
    assert_eq!(error.file, dir.path().join("writer.j2").display().to_string());
    assert_eq!(error.line, Some(5));
    assert_eq!(error.variable.as_deref(), Some("page.titel"));
    let message = error.to_string();
    assert!(message.contains("writer.j2, line 5: unknown variable `page.titel`"), "{message}");
}

#[test]
fn a_syntax_error_names_the_file_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let broken = "{% block system %}\nRules.\n{% endblock %}\n{% block prompt %}\n{% for s in sources %}\n{{ s.path }}\n{% endblock %}\n";
    write(dir.path(), "writer.j2", broken);
    let error = only_error(dir.path());
    assert!(error.file.ends_with("writer.j2"), "{error}");
    assert!(error.line.is_some(), "{error}");
    assert!(error.message.starts_with("syntax error"), "{error}");
}

#[test]
fn an_unknown_name_in_a_branch_the_sample_does_not_take_is_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let branch = WRITER.replace(
        "Write plainly.",
        "Write plainly.\n{% if page.doc_type == \"never\" %}{{ mystery }}{% endif %}",
    );
    write(dir.path(), "writer.j2", &branch);
    let error = only_error(dir.path());
    assert_eq!(error.variable.as_deref(), Some("mystery"));
    assert_eq!(error.line, Some(3));
}

#[test]
fn a_broken_shared_block_is_reported_on_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "blocks/linking.j2",
        "Titles:\n{% for other in pages %}\n- {{ other.titel }}\n{% endfor %}\n",
    );
    let error = only_error(dir.path());
    assert_eq!(error.file, dir.path().join("blocks/linking.j2").display().to_string());
    assert_eq!(error.line, Some(3));
    assert_eq!(error.variable.as_deref(), Some("other.titel"));
}

#[test]
fn a_template_without_its_two_blocks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ask.j2", "Answer {{ question }}\n");
    let error = only_error(dir.path());
    assert!(error.file.ends_with("ask.j2"));
    assert!(error.message.contains("block system"), "{error}");
}

#[test]
fn a_variable_behind_a_filter_is_named_itself() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "writer.j2", &WRITER.replace("page.title", "page.titel | upper"));
    let error = only_error(dir.path());
    assert_eq!(error.variable.as_deref(), Some("page.titel"), "{error}");
    assert_eq!(error.line, Some(5));
}

#[test]
fn a_name_set_in_either_branch_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let branches = WRITER.replace(
        "Page: {{ page.title }}",
        "{% if page.sections %}{% set intro = \"Sections\" %}{% else %}{% set intro = \"None\" %}{% endif %}{{ intro }}: {{ page.title }}",
    );
    write(dir.path(), "writer.j2", &branches);
    let prompts = Prompts::load(Some(dir.path())).unwrap();
    assert_eq!(prompts.writer(&WriterContext::sample()).unwrap().prompt, "Sections: Invoices");
}
