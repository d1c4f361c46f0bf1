//! Files stay inside the definition: every command refuses, when it loads the
//! definition, a step path that links out of the definition directory (directly, through
//! a linked directory on the way, or from inside an uploaded directory), naming the path
//! and the link's target, with exit 2, before packer runs.

use crate::common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::packer_standin::PackerStandIn;
use common::*;

const DEF: &str = crate::definition_with_target_t!(
    "img",
    r#"[[provision]]
script = "scripts/ok.sh"
[[provision]]
file = "files/"
destination = "/tmp/files"
"#
);

/// A definition whose `files/` holds `leak`, a link to a "secret" outside it.
fn leaking(how: &str) -> (Fixture, tempfile::TempDir) {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shadow"), "root:$6$secret\n").unwrap();
    std::fs::create_dir(outside.path().join(".ssh")).unwrap();
    std::fs::write(outside.path().join(".ssh/id_ed25519"), "PRIVATE KEY\n").unwrap();
    let f = Fixture::new(DEF);
    f.script("scripts/ok.sh", "#!/bin/sh\necho ok\n")
        .file("files/readme.txt", "hello\n");
    let files = f.path().join("files");
    match how {
        "file" => symlink(outside.path().join("shadow"), files.join("leak")).unwrap(),
        "directory" => symlink(outside.path().join(".ssh"), files.join("leak")).unwrap(),
        "relative" => {
            let up = "../".repeat(f.path().components().count() + 1);
            let target = format!("{up}{}", outside.path().join("shadow").display());
            symlink(target, files.join("leak")).unwrap()
        }
        other => panic!("{other}"),
    }
    (f, outside)
}

/// A packer stand-in that only records that it ran.
fn marker_packer(dir: &Path) -> (String, std::path::PathBuf) {
    let marker = dir.join("packer-ran");
    let packer = PackerStandIn::new()
        .marker(&marker)
        .exit(1)
        .write(&dir.join("packer"));
    (packer.display().to_string(), marker)
}

#[test]
fn every_command_refuses_a_link_out_of_the_definition_before_packer_runs() {
    let key_dir = tempfile::tempdir().unwrap();
    let key = key_dir.path().join("key");
    std::fs::write(&key, "k").unwrap();
    let test_vars = [
        "--var".to_string(),
        "test_host=127.0.0.1:9".to_string(),
        "--var".to_string(),
        format!("test_ssh_key={}", key.display()),
    ];
    for how in ["file", "directory", "relative"] {
        let (f, outside) = leaking(how);
        let target = outside.path().canonicalize().unwrap();
        let target = match how {
            "directory" => target.join(".ssh"),
            _ => target.join("shadow"),
        };
        let (packer, marker) = marker_packer(key_dir.path());
        for command in [
            vec!["render"],
            vec![
                "render",
                "--out",
                key_dir.path().join("out").to_str().unwrap(),
            ],
            vec!["validate"],
            vec!["fingerprint"],
            vec!["plan"],
            vec!["test"],
            vec!["build"],
        ] {
            let mut args: Vec<&str> = vec!["--packer", &packer];
            if command == ["test"] {
                args.extend(test_vars.iter().map(String::as_str));
            }
            args.extend(&command);
            let r = run_tool(f.path(), &args, &worker_env());
            let context = format!("{how} link, {command:?}:\n{}", r.all());
            assert_eq!(r.code, 2, "{context}");
            assert!(
                r.stderr.contains(&format!(
                    "{}/files/leak links to {}",
                    f.path().display(),
                    target.display()
                )),
                "{context}"
            );
            assert!(r.stderr.contains("image.toml:7:"), "{context}");
            assert!(!r.all().contains("PRIVATE KEY") && !r.all().contains("$6$"));
            assert!(!marker.exists(), "packer ran: {context}");
            assert!(
                !key_dir.path().join("out/template.json").exists(),
                "{context}"
            );
        }
    }
}

#[test]
fn a_linked_directory_on_the_way_leaves_too() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), "x\n").unwrap();
    let f = Fixture::new(
        "name = \"img\"\n[target.t]\nsource_image = \"b\"\nflavor = \"f\"\n\
         [[provision]]\nfile = \"etc/passwd\"\ndestination = \"/tmp/p\"\n",
    );
    symlink(outside.path(), f.path().join("etc")).unwrap();
    let r = run_tool(f.path(), &["render"], &worker_env());
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains(&format!(
            "etc/passwd links to {}",
            outside
                .path()
                .canonicalize()
                .unwrap()
                .join("passwd")
                .display()
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn links_that_stay_inside_are_fine() {
    let f = Fixture::new(DEF);
    f.script("scripts/ok.sh", "#!/bin/sh\necho ok\n")
        .file("files/readme.txt", "hello\n")
        .file("shared/common.txt", "c\n");
    symlink("../shared/common.txt", f.path().join("files/common.txt")).unwrap();
    let r = run_tool(f.path(), &["render"], &worker_env());
    assert_eq!(r.code, 0, "{}", r.all());
}
