//! The findings study's `--quick` mode on the real ML-100K files: every strategy at every
//! budget, with finite metrics, its baselines, curves, PNGs and summary.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn ml100k() -> PathBuf {
    let value = std::env::var_os("PETERREC_DATA").unwrap_or_else(|| {
        panic!(
            "this test needs the real data sets: set PETERREC_DATA to the folder holding \
             ml-100k/ (`.ci/run` sets it)"
        )
    });
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = PathBuf::from(value);
    for candidate in [p.join("ml-100k"), root.join(&p).join("ml-100k")] {
        if candidate.join("u.data").is_file() {
            return candidate;
        }
    }
    panic!(
        "this test needs the real data sets: {} holds no ml-100k/u.data",
        p.display()
    );
}

fn lines(path: PathBuf) -> Vec<Value> {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn finite_share(v: &Value) -> f64 {
    let x = v.as_f64().unwrap_or(f64::NAN);
    assert!(x.is_finite() && (0.0..=1.0).contains(&x), "{v}");
    x
}

#[test]
fn quick_mode_has_every_strategy_at_every_budget() {
    let out = std::env::temp_dir().join(format!("peterrec-findings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_findings"))
        .arg("--path")
        .arg(ml100k())
        .arg("--out-dir")
        .arg(&out)
        .args(["--quick", "--quiet"])
        .output()
        .expect("the binary starts");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let strategies = [
        "peterrec-serial",
        "peterrec-parallel",
        "fineall",
        "finecls",
        "finelast-1",
        "scratch",
    ];
    // ML-100K gender: 943 users, 70% of them (660) train; the 50% budget keeps 330.
    let budget = lines(out.join("budget.jsonl"));
    assert_eq!(budget.len(), strategies.len() * 2);
    let mut seen = BTreeSet::new();
    for r in &budget {
        assert_eq!(r["task"], "gender");
        let b = r["budget"].as_f64().unwrap();
        let users = r["train_users"].as_u64().unwrap();
        assert_eq!(users, if b == 1.0 { 660 } else { 330 }, "{r}");
        assert_eq!(r["train_examples"].as_u64(), Some(users));
        finite_share(&r["value"]);
        finite_share(&r["valid"]);
        assert!(seen.insert((r["strategy"].as_str().unwrap().to_string(), b.to_string())));
    }
    for s in strategies {
        for b in ["0.5", "1"] {
            assert!(seen.contains(&(s.to_string(), b.to_string())), "{s} at {b}");
        }
    }
    let baselines = lines(out.join("baselines.jsonl"));
    assert_eq!(baselines.len(), 2);
    for b in &baselines {
        assert_eq!(b["baseline"], "majority");
        finite_share(&b["value"]);
    }
    let curves = lines(out.join("curves.jsonl"));
    assert_eq!(curves.len(), strategies.len());
    for c in &curves {
        let h = c["history"].as_array().unwrap();
        assert_eq!(h.len(), 2, "early stopping is off: every epoch runs");
        for e in h {
            assert!(e[1].as_f64().unwrap().is_finite());
            finite_share(&e[2]);
        }
    }
    for png in ["budget-gender.png", "curve-gender-100.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png}");
    }
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("| 50% (330 users) | 100% (660 users) |"),
        "{summary}"
    );
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for s in strategies {
        let cells = &last["budget"][format!("gender/{s}")];
        finite_share(&cells["0.5"]["mean"]);
        finite_share(&cells["1"]["mean"]);
    }
    std::fs::remove_dir_all(&out).unwrap();
}
