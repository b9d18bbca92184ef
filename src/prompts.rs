//! `isocrates prompts check|render`, and the check every long-running command makes at
//! start: the templates compile and render with sample data.

use clap::Subcommand;
use isocrates_workflows::prompts::{PromptError, Prompts, Template};

use crate::config::Config;

/// What `isocrates prompts` does.
#[derive(Subcommand)]
pub enum PromptsCommand {
    /// Load every template (built in, or from PROMPTS_DIR) and render it with sample data;
    /// list each problem with its file, line and variable.
    Check,
    /// Print what a model receives from one template, rendered with sample data.
    Render {
        /// planner, writer, ask or summarise.
        name: String,
    },
}

/// Loads the templates, or the error that stops start-up: the first problem with its file,
/// line and variable, and how many more there are.
pub fn load(config: &Config) -> anyhow::Result<Prompts> {
    let prompts = Prompts::load(config.prompts_dir.as_deref()).map_err(|errors| {
        let more = match errors.len() {
            0 | 1 => String::new(),
            n => format!(" ({} more; run `isocrates prompts check` to list them)", n - 1),
        };
        anyhow::anyhow!("prompt template {}{more}", errors[0])
    })?;
    let overrides = prompts.overrides();
    match &config.prompts_dir {
        Some(dir) => tracing::info!(
            prompts_dir = %dir.display(),
            overridden = overrides.len(),
            "prompts loaded"
        ),
        None => tracing::info!("prompts loaded (built in)"),
    }
    Ok(prompts)
}

/// Runs one `prompts` command.
#[allow(clippy::print_stdout)]
pub fn run(command: PromptsCommand, config: &Config) -> anyhow::Result<()> {
    let loaded = Prompts::load(config.prompts_dir.as_deref());
    match command {
        PromptsCommand::Check => match loaded {
            Ok(prompts) => {
                for template in Template::ALL {
                    println!("{}: ok", template.name());
                }
                for path in prompts.overrides() {
                    println!("from PROMPTS_DIR: {}", path.display());
                }
                Ok(())
            }
            Err(errors) => {
                for error in &errors {
                    println!("{error}");
                }
                anyhow::bail!("{} problem(s) in the prompt templates (listed above)", errors.len())
            }
        },
        PromptsCommand::Render { name } => {
            let template = Template::parse(&name).ok_or_else(|| {
                let names: Vec<&str> = Template::ALL.iter().map(|t| t.name()).collect();
                anyhow::anyhow!("no template is called {name:?}: name one of {}", names.join(", "))
            })?;
            let prompts = loaded.map_err(first_problem)?;
            let rendered = prompts.sample(template).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "===== system =====\n{}\n\n===== prompt =====\n{}",
                rendered.system, rendered.prompt
            );
            Ok(())
        }
    }
}

fn first_problem(errors: Vec<PromptError>) -> anyhow::Error {
    anyhow::anyhow!(
        "prompt template {} (run `isocrates prompts check` to list every problem)",
        errors[0]
    )
}
