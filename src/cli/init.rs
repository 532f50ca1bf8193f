//! `snap init`

use super::{kdf_params, Ctx};
use anyhow::Result;
use snap::format::config::{ChunkerParams, Chunking};
use snap::repo::NewKey;

/// Create a repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Chunk sizes for site files, as MIN,AVG,MAX bytes (AVG a power of two).
    #[arg(long, value_parser = parse_params)]
    chunk_files: Option<ChunkerParams>,
    /// Chunk sizes for database dumps, as MIN,AVG,MAX bytes.
    #[arg(long, value_parser = parse_params)]
    chunk_db: Option<ChunkerParams>,
    /// A name for the first key (who or what uses the password) [default: user@host].
    #[arg(long)]
    label: Option<String>,
}

fn parse_params(s: &str) -> std::result::Result<ChunkerParams, String> {
    let v: Vec<u32> = s
        .split(',')
        .map(|x| x.trim().parse::<u32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("{s:?}: {e}"))?;
    let [min, avg, max] = v[..] else {
        return Err(format!("{s:?}: give MIN,AVG,MAX"));
    };
    let p = ChunkerParams { min, avg, max };
    p.validate().map_err(|_| {
        format!("{s:?}: need 64 <= MIN < AVG < MAX <= 16 MiB, AVG a power of two, MIN and MAX even")
    })?;
    Ok(p)
}

pub fn run(ctx: &Ctx, a: Args) -> Result<i32> {
    let pw = ctx.password("new repository password: ")?;
    if pw.is_empty() {
        anyhow::bail!("refusing an empty password");
    }
    let mut chunking = Chunking::default();
    if let Some(p) = a.chunk_files {
        chunking.files = p;
    }
    if let Some(p) = a.chunk_db {
        chunking.db = p;
    }
    if let Some(l) = &a.label {
        snap::format::crypto::check_label(l)?;
    }
    let key = NewKey {
        kdf: kdf_params()?,
        label: a.label,
    };
    if let Some(r) = &ctx.remote {
        anyhow::bail!(
            "`snap remote init {}` creates a remote (with the local repository's key, so that both deduplicate alike)",
            r.name
        );
    }
    let repo = ctx.repo.init(
        &ctx.cache,
        &|v| ctx.setting(v),
        pw.as_bytes(),
        &key,
        chunking,
    )?;
    if ctx.json {
        super::print_json(&serde_json::json!({
            "repository": ctx.repo.display(),
            "id": repo.config.id.to_hex(),
            "kdf": key.kdf,
        }))?;
    } else {
        outln!(
            "created snap repository {} at {}",
            repo.config.id.short(),
            ctx.repo.display()
        );
        outln!("key derivation: {}", key.kdf);
        outln!("keep the password safe: without it the data cannot be read back");
    }
    Ok(0)
}
