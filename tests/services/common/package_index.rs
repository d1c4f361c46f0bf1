//! A package index on loopback that speaks PEP 691's JSON (`/simple/PROJECT/`, Content-Type
//! `application/vnd.pypi.simple.v1+json`) and serves its files (`/files/NAME`), on the
//! tests' loopback server (127.0.0.1, a free port). Each file is listed with the sha256 it
//! had when it was published; `tamper` changes what a file serves under the same name and
//! version, as a compromised or rebuilt artifact would, while the index keeps its hash.

use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::loopback::{Answer, Server};

/// One file of the index: what the page lists, and what is served.
#[derive(Clone)]
struct File {
    project: String,
    filename: String,
    listed_sha256: String,
    requires_python: Option<String>,
    yanked: bool,
    content: Vec<u8>,
}

pub struct PackageIndex {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    files: Arc<Mutex<Vec<File>>>,
    _server: Server,
}

pub fn sha256(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

impl PackageIndex {
    pub fn start() -> PackageIndex {
        let files: Arc<Mutex<Vec<File>>> = Arc::default();
        let served = Arc::clone(&files);
        let server = Server::start("127.0.0.1", move |request| {
            let (path, _) = request.path_and_query();
            let files = served.lock().unwrap();
            if let Some(project) = path
                .strip_prefix("/simple/")
                .and_then(|p| p.strip_suffix('/'))
            {
                let listed: Vec<serde_json::Value> = files
                    .iter()
                    .filter(|f| f.project == project)
                    .map(|f| {
                        serde_json::json!({
                            "filename": f.filename,
                            // Relative to the page, as PEP 691 allows.
                            "url": format!("../../files/{}", f.filename),
                            "hashes": {"sha256": f.listed_sha256},
                            "requires-python": f.requires_python,
                            "yanked": f.yanked,
                        })
                    })
                    .collect();
                if listed.is_empty() {
                    return Answer::new(404, "no such project\n");
                }
                let page = serde_json::json!({
                    "meta": {"api-version": "1.1"}, "name": project, "files": listed,
                });
                return Answer::new(200, page.to_string())
                    .header("Content-Type", "application/vnd.pypi.simple.v1+json");
            }
            match path
                .strip_prefix("/files/")
                .and_then(|name| files.iter().find(|f| f.filename == name))
            {
                Some(file) => Answer::new(200, file.content.clone())
                    .header("Content-Type", "application/octet-stream"),
                None => Answer::new(404, "no such file\n"),
            }
        });
        PackageIndex {
            url: server.url.clone(),
            files,
            _server: server,
        }
    }

    /// The index's URL, for `UWORKER_IMAGE_INDEX_URL`.
    pub fn simple_url(&self) -> String {
        format!("{}/simple/", self.url)
    }

    /// Where a file is served.
    pub fn file_url(&self, filename: &str) -> String {
        format!("{}/files/{filename}", self.url)
    }

    /// Lists `filename` of `project` with `content`'s sha256.
    pub fn publish(
        &self,
        project: &str,
        filename: &str,
        content: &[u8],
        requires_python: Option<&str>,
        yanked: bool,
    ) {
        self.files.lock().unwrap().push(File {
            project: project.to_string(),
            filename: filename.to_string(),
            listed_sha256: sha256(content),
            requires_python: requires_python.map(str::to_string),
            yanked,
            content: content.to_vec(),
        });
    }

    /// `filename` serves `content` from now on; the index still lists its old sha256.
    pub fn tamper(&self, filename: &str, content: &[u8]) {
        let mut files = self.files.lock().unwrap();
        let file = files
            .iter_mut()
            .find(|f| f.filename == filename)
            .expect("a published file");
        file.content = content.to_vec();
    }
}
