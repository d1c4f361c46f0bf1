//! Every parser of outside input takes arbitrary bytes without a panic: image.toml, the
//! var-file, the worker config, clouds.yaml, a record, packer's machine-readable lines,
//! the worker_source and URL-credential readers, and a git worker_source's pin (its
//! pinned value reads back as itself) and `git ls-remote`'s listing. Inputs are random bytes and valid
//! documents with random text spliced in (which reaches deeper than noise alone).

use std::path::Path;

use proptest::prelude::*;

use uworker_image::definition::Definition;
use uworker_image::openstack::clouds;
use uworker_image::packer::machine;
use uworker_image::pin::git::{GitSource, Wanted};
use uworker_image::record::{self, Fingerprint};
use uworker_image::report::release_tag;
use uworker_image::secrets::Redactor;
use uworker_image::{seed, userinfo, worker_source};

const DEFINITION: &str = crate::definition_with_target_t!(
    "img",
    r#"metadata = { a = "b" }
[variables]
worker_source = "git+https://u:t@h/w.git"
[[provision]]
inline = ["echo {{user `worker_source`}}"]
environment = { A = "{{user `worker_source`}}" }
only = "build"
[worker]
optional = ["UWORKER_X"]
[test]
ssh_timeout = "1m"
"#
);
const VAR_FILE: &str = "{\n  \"test_host\": \"h:22\",\n  \"test_ssh_key\": \"k\\\"\\u00e9\"\n}\n";
const WORKER_CONFIG: &str =
    "# c\nexport UWORKER_A='x\ny'\nexport UWORKER_B=\"a\\$b\"\nexport UWORKER_C=plain\n";
const CLOUDS: &str = "clouds:\n  c:\n    auth:\n      auth_url: http://h/v3\n      password: \"p\"\n    region_name: r\n";
const RECORD: &str = r#"{"action":"build","built":true,"target":"t","fingerprint":"sha256:ab",
"image_id":"i","image_name":"n","reason":"r","git_commit":"c","manifest":{"schema":1,"image":"w",
"target":"t","template_sha256":"ff","files":[{"path":"a","executable":true,"sha256":"aa"}],
"variables":{"v":"x"},"secrets":{"UWORKER_A":null},"base_image":{"by":"id","value":"b",
"resolved_id":"b"},"packer_version":"1.6.6"}}"#;
/// The dashboard's v3 RC file, as Horizon renders it (the password prompt included).
const OPENRC: &str = include_str!("../fixtures/openrc/v3.sh");
/// A git worker_source with every part pip reads, and `git ls-remote`'s listing.
const GIT_SOURCE: &str = "uworker @ git+https://u:p%40ss@h.example:8443/o/w.git@v1?x=1#egg=w&subdirectory=src ; python_version >= \"3.10\"\n\
0123456789abcdef0123456789abcdef01234567\tHEAD\n0123456789abcdef0123456789abcdef01234567\trefs/tags/v1^{}\n";
const PACKER_LINES: &str = "1795546070,,ui,message,    null: a%!(PACKER_COMMA) b\\n c\n\
1795546070,test,artifact,0,id,x\n1795546070,test,artifact-count,1\n1795546070,,error-count,2\n";

/// A valid document with `noise` spliced in at `at` (a char boundary at or after it).
fn spliced(document: &str, at: prop::sample::Index, noise: &str) -> String {
    let mut cut = at.index(document.len() + 1);
    while !document.is_char_boundary(cut) {
        cut += 1;
    }
    let (head, tail) = document.split_at(cut);
    format!("{head}{noise}{tail}")
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[\\PC\\n\"'{}\\[\\]=:,#\\\\@%$]{0,64}",
    ]
}

fn every_parser(input: &str) {
    let path = Path::new("input");
    let _ = Definition::parse(input, path, path);
    let _ = seed::parse_var_file(input, path);
    let _ = seed::parse_worker_config(input, path);
    let _ = uworker_image::openstack::openrc::parse(input, path);
    if let Ok(value) = clouds::parse(input, path) {
        let _ = value
            .get("clouds")
            .and_then(|c| c.get("c"))
            .map(clouds::variables);
    }
    let _ = record::read(input);
    let _ = record::read_manifest(input);
    for line in input.lines() {
        let _ = machine::parse(line);
        let _ = machine::unescape(line);
    }
    let _ = worker_source::check_requirement(input);
    git_source(input);
    let stripped = userinfo::strip(input);
    for info in &stripped.userinfo {
        let _ = userinfo::secret_forms(info);
    }
    let _ = release_tag(&Fingerprint::from(input.to_string()));
    let redactor = Redactor::new(stripped.userinfo.iter().map(String::as_str).chain([input]));
    let _ = redactor.with_packer_escapes().redact(input);
}

/// A git source's pinned value is pinned, reads back as itself, and names the same
/// repository; its URL (what git is given and messages show) holds no credentials.
fn git_source(input: &str) {
    for line in input.lines() {
        let Ok(Some(source)) = GitSource::parse(line) else {
            continue;
        };
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let pin = source.pinned(commit);
        let again = GitSource::parse(&pin.value)
            .expect("a pinned value parses")
            .expect("as a git source");
        assert_eq!(
            again.already_pinned().map(|p| p.value),
            Some(pin.value.clone())
        );
        assert_eq!((again.url(), again.host()), (source.url(), source.host()));
        assert_eq!(again.credential(), source.credential());
        if let Some(credential) = source.credential().filter(|c| !c.is_empty()) {
            assert!(!source.url().contains(&format!("{credential}@")), "{line}");
        }
    }
    for wanted in [
        Wanted::Head,
        Wanted::Name(input.to_string()),
        Wanted::Exact(input.to_string()),
    ] {
        let _ = wanted.commit_in(input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_text_never_panics(input in text()) {
        every_parser(&input);
    }

    #[test]
    fn valid_documents_with_noise_never_panic(
        which in 0usize..8,
        at in any::<prop::sample::Index>(),
        noise in text(),
    ) {
        let document = [DEFINITION, VAR_FILE, WORKER_CONFIG, CLOUDS, RECORD, PACKER_LINES, OPENRC, GIT_SOURCE][which];
        every_parser(&spliced(document, at, &noise));
    }
}

#[test]
fn the_documents_parse_as_they_are() {
    let path = Path::new("input");
    Definition::parse(DEFINITION, path, path).unwrap();
    assert_eq!(seed::parse_var_file(VAR_FILE, path).unwrap().len(), 2);
    assert_eq!(
        seed::parse_worker_config(WORKER_CONFIG, path)
            .unwrap()
            .len(),
        3
    );
    let value = clouds::parse(CLOUDS, path).unwrap();
    assert_eq!(clouds::variables(&value["clouds"]["c"]).unwrap().len(), 3);
    record::read(RECORD).unwrap();
    record::read_manifest(RECORD).unwrap();
    assert!(
        uworker_image::openstack::openrc::parse(OPENRC, path)
            .unwrap()
            .asks_password
    );
    assert_eq!(PACKER_LINES.lines().filter_map(machine::parse).count(), 4);
    let source = GitSource::parse(GIT_SOURCE.lines().next().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(source.url(), "https://h.example:8443/o/w.git?x=1");
    assert_eq!(
        source.wanted().commit_in(GIT_SOURCE).as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
}
