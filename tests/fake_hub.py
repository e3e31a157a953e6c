"""A small Hugging Face Hub on 127.0.0.1 that the real ``huggingface_hub`` client talks to through ``HF_ENDPOINT``.

It speaks the part of the Hub's HTTP API that creating a repository, committing files (uploaded
inline: every file is "regular", so no LFS or Xet storage is involved), describing a repository,
listing its tree and downloading its files use. Repositories live in memory, with their commits;
errors carry the Hub's ``X-Error-Code`` headers, so the client raises its own error types. Any
request it does not know is answered 404 and recorded in ``unknown``, so a test can show it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml

_REPO = r"(?P<repo>[^/]+/[^/]+)"


@dataclass
class Repo:
    private: bool
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (sha, files), oldest first

    def files_at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if not self.commits:
            return ("0" * 40, {}) if revision == "main" else None
        if revision == "main":
            return self.commits[-1]
        return next((commit for commit in self.commits if commit[0] == revision), None)


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class FakeHub:
    """``with FakeHub() as hub:`` serves on ``hub.endpoint``; ``hub.requests`` logs (method, path)."""

    def __init__(self, token: str = "hf_fake_write_token"):
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def commit(self, repo_id: str, files: dict[str, bytes], private: bool = False) -> str:
        """Add a commit directly (as another tool would have pushed it); returns its sha."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, Repo(private=private))
            current = dict(repo.commits[-1][1]) if repo.commits else {}
            current.update(files)
            sha = hashlib.sha1(f"{repo_id}:{len(repo.commits)}:{sorted(current)}".encode()).hexdigest()
            repo.commits.append((sha, current))
            return sha


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        # --- plumbing ---------------------------------------------------------------------------

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, value, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(value).encode(), headers)

        def _error(self, status: int, code: str | None, message: str) -> None:
            headers = {"X-Error-Message": message}
            if code:
                headers["X-Error-Code"] = code
            self._json(status, {"error": message}, headers)

        def _authorized(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {hub.token}"

        def _repo(self, repo_id: str) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo.private and not self._authorized()):
                self._error(404 if self._authorized() else 401, "RepoNotFound", "Repository not found")
                return None
            return repo

        def _revision(self, repo: Repo, revision: str) -> tuple[str, dict[str, bytes]] | None:
            found = repo.files_at(unquote(revision))
            if found is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return found

        # --- routes -----------------------------------------------------------------------------

        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            path = url.path
            hub.requests.append((method, path))
            body = self._body() if method == "POST" else b""
            with hub.lock:
                if method == "POST" and path == "/api/repos/create":
                    return self._create(json.loads(body))
                if method == "POST" and path == "/api/validate-yaml":
                    return self._validate_yaml(json.loads(body))
                if method == "GET" and (match := re.fullmatch(rf"/api/models/{_REPO}(?:/revision/(?P<rev>.+))?",
                                                              path)):
                    return self._info(match["repo"], match["rev"] or "main")
                if method == "GET" and (match := re.fullmatch(rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/.*)?",
                                                              path)):
                    return self._tree(match["repo"], match["rev"])
                if method == "POST" and (match := re.fullmatch(rf"/api/models/{_REPO}/preupload/(?P<rev>.+)", path)):
                    return self._preupload(match["repo"], json.loads(body))
                if method == "POST" and (match := re.fullmatch(rf"/api/models/{_REPO}/commit/(?P<rev>.+)", path)):
                    return self._commit(match["repo"], body)
                if method in ("GET", "HEAD") and (
                        match := re.fullmatch(rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path)):
                    return self._resolve(match["repo"], match["rev"], unquote(match["file"]))
            hub.unknown.append((method, self.path))
            self._error(404, None, f"fake hub: no route for {method} {self.path}")

        def _create(self, payload: dict) -> None:
            if not self._authorized():
                return self._error(401, None, "Invalid credentials in Authorization header")
            repo_id = f"{payload['organization']}/{payload['name']}"
            if repo_id in hub.repos:  # the Hub answers with the repository's address too
                return self._json(409, {"error": "You already created this model repo",
                                        "url": f"{hub.endpoint}/{repo_id}"})
            hub.repos[repo_id] = Repo(private=payload.get("visibility") == "private" or bool(payload.get("private")))
            self._json(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id})

        def _validate_yaml(self, payload: dict) -> None:
            content = payload["content"]
            match = re.match(r"---\n(.*?)\n---\n", content, re.DOTALL)
            try:
                metadata = yaml.safe_load(match.group(1)) if match else None
            except yaml.YAMLError as error:
                return self._json(400, {"errors": [{"message": f"invalid YAML: {error}"}]})
            if not isinstance(metadata, dict):
                return self._json(400, {"errors": [{"message": "metadata should be a YAML mapping"}]})
            self._json(200, {"errors": [], "warnings": []})

        def _snapshot(self, repo_id: str, revision: str):
            """(repo, sha, files) of a repository at a revision, or None once the error reply has been sent."""
            repo = self._repo(repo_id)
            found = None if repo is None else self._revision(repo, revision)
            return None if found is None else (repo, *found)

        def _info(self, repo_id: str, revision: str) -> None:
            snapshot = self._snapshot(repo_id, revision)
            if snapshot is None:
                return
            repo, sha, files = snapshot
            self._json(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private,
                             "siblings": [{"rfilename": name} for name in sorted(files)], "tags": [],
                             "downloads": 0, "likes": 0, "lastModified": "2026-12-07T00:00:00.000Z"})

        def _tree(self, repo_id: str, revision: str) -> None:
            snapshot = self._snapshot(repo_id, revision)
            if snapshot is None:
                return
            self._json(200, [{"type": "file", "oid": git_blob_id(content), "size": len(content), "path": name}
                             for name, content in sorted(snapshot[2].items())])

        def _preupload(self, repo_id: str, payload: dict) -> None:
            if not self._authorized():
                return self._error(401, None, "Invalid credentials in Authorization header")
            if self._repo(repo_id) is None:
                return
            self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                       for f in payload["files"]]})

        def _commit(self, repo_id: str, body: bytes) -> None:
            if not self._authorized():
                return self._error(401, None, "Invalid credentials in Authorization header")
            repo = self._repo(repo_id)
            if repo is None:
                return
            files = {}
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] != "header":
                    return self._error(400, None, f"fake hub: unsupported commit item {item['key']!r}")
            hub.lock.release()  # commit() takes the lock itself
            try:
                sha = hub.commit(repo_id, files)
            finally:
                hub.lock.acquire()
            self._json(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha,
                             "pullRequestUrl": None})

        def _resolve(self, repo_id: str, revision: str, file: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            found = self._revision(repo, revision)
            if found is None:
                return
            sha, files = found
            if file not in files:
                return self._error(404, "EntryNotFound", f"{file} does not exist on {revision}")
            content = files[file]
            self._send(200, content, {"X-Repo-Commit": sha, "ETag": f'"{git_blob_id(content)}"'},
                       content_type="application/octet-stream")

    return Handler
