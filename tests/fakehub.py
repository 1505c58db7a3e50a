"""TEST DOUBLE — an in-memory imitation of the Hugging Face Hub HTTP API, served on 127.0.0.1 for offline tests.

This is NOT a Hub implementation and is never used by product code. It answers just the requests that
``huggingface_hub`` (2.x) sends for what xzoo does — create a repo, create a branch, pre-upload, commit (also as a
pull request), model info, file tree, and resolve/download — so that the client's real request flow and the
on-Hub file layout can be tested without a network. It does not implement authentication, LFS/xet transfers
(every file is accepted inline, base64, through the commit endpoint), rate limits or pagination.

Example (what the ``fake_hub`` fixture in the tests does)::

    hub = FakeHub().start()              # hub.endpoint == 'http://127.0.0.1:<port>'
    ...  # point huggingface_hub.constants at hub.endpoint, run client code
    hub.stop()
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_RID = r'(?P<rid>[^/]+/[^/]+)'
_KINDS = {'models': 'model', 'datasets': 'dataset', 'spaces': 'space'}


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's content (what the Hub reports as a non-LFS file's ``oid``/ETag)."""
    return hashlib.sha1(b'blob %d\0' % len(data) + data).hexdigest()


class _Repo:
    """One repository: immutable commits (full file snapshots) and refs (branches, PRs) pointing at them."""

    def __init__(self, repo_id: str, private: bool) -> None:
        self.repo_id, self.private = repo_id, private
        first = hashlib.sha1(f'init {repo_id}'.encode()).hexdigest()
        self.commits: dict[str, dict[str, Any]] = {first: {'files': {}, 'message': 'initial commit', 'parent': None}}
        self.refs: dict[str, str] = {'main': first}
        self.num_prs = 0

    def resolve(self, revision: str) -> str | None:
        """A branch, PR ref or (full) commit sha → commit sha."""
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None

    def commit(self, ref: str, files: dict[str, bytes | None], message: str) -> str:
        parent = self.refs[ref]
        snapshot = dict(self.commits[parent]['files'])
        for path, content in files.items():
            if content is None:
                snapshot.pop(path, None)
            else:
                snapshot[path] = content
        sha = hashlib.sha1(f'{parent}{message}{len(self.commits)}'.encode()).hexdigest()
        self.commits[sha] = {'files': snapshot, 'message': message, 'parent': parent}
        self.refs[ref] = sha
        return sha


class FakeHub:
    """Holds the repositories and the HTTP server; ``requests`` logs ``(method, path)`` of every request (the
    query string dropped), in order; :meth:`requests_beyond` lists those outside a repo's given files."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, 'call start() first'
        return f'http://127.0.0.1:{self._server.server_address[1]}'

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            state = hub

        self._server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def files(self, repo_id: str, revision: str = 'main') -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision`` (for assertions)."""
        repo = self.repos[('model', repo_id)]
        return dict(repo.commits[repo.resolve(revision)]['files'])

    def add_model(self, repo_id: str, files: dict[str, bytes], private: bool = False) -> str:
        """Create model repo ``repo_id`` holding ``files`` in one commit on ``main`` (no request is made); return the
        commit sha. Used to serve crafted repos to a client under test."""
        with self.lock:
            repo = self.repos.setdefault(('model', repo_id), _Repo(repo_id, private))
            return repo.commit('main', dict(files), 'files added by the test')

    def requests_beyond(self, repo_id: str, filenames: set[str] | frozenset[str]) -> list[tuple[str, str]]:
        """The requests that were not a HEAD/GET of one of ``filenames`` of ``repo_id`` (any revision): what a
        client asked of the Hub beyond those files (another repo, the API, another file)."""
        own = re.compile(rf'/{re.escape(repo_id)}/resolve/[^/]+/(?P<file>.+)')
        out = []
        for method, path in list(self.requests):
            m = own.fullmatch(path)
            if method in ('GET', 'HEAD') and m and unquote(m['file']) in filenames:
                continue
            out.append((method, path))
        return out

    def commit_count(self, repo_id: str) -> int:
        """Commits made by clients (the initial empty commit not counted)."""
        return len(self.repos[('model', repo_id)].commits) - 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    state: FakeHub

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    # --- plumbing ---------------------------------------------------------------------------------------------
    def _reply(self, code: int, body: Any = b'', headers: dict[str, str] | None = None,
               ctype: str = 'application/json', head: bool = False) -> None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, code: int, error_code: str, message: str, head: bool = False) -> None:
        self._reply(code, {'error': message}, headers={'X-Error-Code': error_code, 'X-Error-Message': message},
                    head=head)

    def _read_body(self) -> bytes:
        size = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(size) if size else b''

    def _split(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return parts.path, parse_qs(parts.query)

    def _repo(self, kind: str, rid: str) -> _Repo | None:
        return self.state.repos.get((kind, unquote(rid)))

    def _base(self) -> str:
        return f"http://{self.headers.get('Host')}"

    # --- POST -------------------------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        path, query = self._split()
        self.state.requests.append(('POST', path))
        body = self._read_body()
        if path == '/api/validate-yaml':
            return self._reply(200, {})
        if path == '/api/repos/create':
            return self._create_repo(json.loads(body or b'{}'))
        m = re.fullmatch(rf'/api/(?P<kind>\w+)/{_RID}/(?P<op>preupload|commit|branch)/(?P<rev>.+)', path)
        if not m or m['kind'] not in _KINDS:
            return self._error(404, 'NotFound', f'no route POST {path}')
        repo = self._repo(_KINDS[m['kind']], m['rid'])
        if repo is None:
            return self._error(404, 'RepoNotFound', f'Repository {m["rid"]} not found')
        rev = unquote(m['rev'])
        if m['op'] == 'branch':
            return self._create_branch(repo, rev, json.loads(body or b'{}'))
        if repo.resolve(rev) is None:
            return self._error(404, 'RevisionNotFound', f'Invalid rev id: {rev}')
        if m['op'] == 'preupload':
            files = json.loads(body)['files']
            return self._reply(200, {'files': [{'path': f['path'], 'uploadMode': 'regular', 'shouldIgnore': False,
                                                'oid': None} for f in files]})
        return self._commit(repo, rev, body, create_pr=query.get('create_pr', ['0'])[0] in ('1', 'true'))

    def _create_repo(self, req: dict[str, Any]) -> None:
        rid = f"{req.get('organization') or 'me'}/{req['name']}"
        key = (req.get('type') or 'model', rid)
        with self.state.lock:
            if key in self.state.repos:
                return self._reply(409, {'error': 'You already created this model repo',
                                         'url': f'{self._base()}/{rid}'}, headers={'X-Error-Code': 'RepoExists'})
            self.state.repos[key] = _Repo(rid, bool(req.get('private')) or req.get('visibility') == 'private')
        self._reply(200, {'url': f'{self._base()}/{rid}', 'name': rid})

    def _create_branch(self, repo: _Repo, branch: str, req: dict[str, Any]) -> None:
        with self.state.lock:
            if branch in repo.refs:
                return self._error(409, 'BranchExists', f'Reference {branch} already exists')
            start = repo.resolve(req.get('startingPoint') or 'main')
            if start is None:
                return self._error(404, 'RevisionNotFound', f'Invalid rev id: {req.get("startingPoint")}')
            repo.refs[branch] = start
        self._reply(200, {})

    def _commit(self, repo: _Repo, rev: str, body: bytes, create_pr: bool) -> None:
        header: dict[str, Any] = {}
        files: dict[str, bytes | None] = {}
        for line in body.splitlines():
            item = json.loads(line)
            key, value = item['key'], item['value']
            if key == 'header':
                header = value
            elif key == 'file':
                files[value['path']] = base64.b64decode(value['content'])
            elif key == 'deletedFile':
                files[value['path']] = None
            else:
                return self._error(400, 'BadRequest', f'operation {key!r} is not implemented by the fake hub')
        with self.state.lock:
            ref = rev if rev in repo.refs else None
            if ref is None:
                return self._error(400, 'BadRequest', 'commits go to a branch, not to a commit sha')
            parent = header.get('parentCommit')
            if parent and parent != repo.refs[ref]:
                return self._error(412, 'PreconditionFailed', 'A commit has happened since. Please refresh.')
            pr_url = None
            if create_pr:
                repo.num_prs += 1
                ref_name = f'refs/pr/{repo.num_prs}'
                repo.refs[ref_name] = repo.refs[ref]
                ref = ref_name
                pr_url = f'{self._base()}/{repo.repo_id}/discussions/{repo.num_prs}'
            sha = repo.commit(ref, files, header.get('summary', ''))
        self._reply(200, {'commitUrl': f'{self._base()}/{repo.repo_id}/commit/{sha}', 'commitOid': sha,
                          'pullRequestUrl': pr_url})

    # --- GET / HEAD -------------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        self._get(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._get(head=True)

    def _get(self, head: bool) -> None:
        path, query = self._split()
        self.state.requests.append(('HEAD' if head else 'GET', path))
        if path == '/api/whoami-v2':
            return self._reply(200, {'type': 'user', 'name': 'me', 'orgs': [],
                                     'auth': {'accessToken': {'displayName': 'fake', 'role': 'write'}}}, head=head)
        m = re.fullmatch(rf'/api/(?P<kind>\w+)/{_RID}(?:/revision/(?P<rev>.+))?', path)
        if m and m['kind'] in _KINDS:
            return self._info(m, head)
        m = re.fullmatch(rf'/api/(?P<kind>\w+)/{_RID}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?', path)
        if m and m['kind'] in _KINDS:
            return self._tree(m, query, head)
        m = re.fullmatch(rf'/(?:(?P<kind>datasets|spaces)/)?{_RID}/resolve/(?P<rev>[^/]+)/(?P<file>.+)', path)
        if m:
            return self._resolve(m, head)
        self._error(404, 'NotFound', f'no route {path}', head=head)

    def _lookup(self, kind: str, rid: str, rev: str, head: bool) -> tuple[_Repo, str] | None:
        repo = self._repo(kind, rid)
        if repo is None:
            self._error(404, 'RepoNotFound', f'Repository {unquote(rid)} not found', head=head)
            return None
        sha = repo.resolve(unquote(rev))
        if sha is None:
            self._error(404, 'RevisionNotFound', f'Invalid rev id: {unquote(rev)}', head=head)
            return None
        return repo, sha

    def _info(self, m: re.Match, head: bool) -> None:
        found = self._lookup(_KINDS[m['kind']], m['rid'], m['rev'] or 'main', head)
        if found is None:
            return
        repo, sha = found
        files = repo.commits[sha]['files']
        self._reply(200, {'id': repo.repo_id, 'modelId': repo.repo_id, 'sha': sha, 'private': repo.private,
                          'tags': [], 'siblings': [{'rfilename': f} for f in sorted(files)]}, head=head)

    def _tree(self, m: re.Match, query: dict[str, list[str]], head: bool) -> None:
        found = self._lookup(_KINDS[m['kind']], m['rid'], m['rev'], head)
        if found is None:
            return
        repo, sha = found
        prefix = (m['sub'] or '').strip('/')
        recursive = query.get('recursive', ['false'])[0] in ('1', 'true', 'True')
        entries, folders = [], set()
        for name, data in sorted(repo.commits[sha]['files'].items()):
            if prefix and not name.startswith(prefix + '/'):
                continue
            rest = name[len(prefix) + 1:] if prefix else name
            if '/' in rest and not recursive:
                folders.add(f"{prefix + '/' if prefix else ''}{rest.split('/', 1)[0]}")
                continue
            entries.append({'type': 'file', 'path': name, 'size': len(data), 'oid': git_blob_sha1(data)})
        entries += [{'type': 'directory', 'path': f, 'oid': git_blob_sha1(f.encode())} for f in sorted(folders)]
        self._reply(200, entries, head=head)

    def _resolve(self, m: re.Match, head: bool) -> None:
        found = self._lookup({'datasets': 'dataset', 'spaces': 'space'}.get(m['kind'] or '', 'model'), m['rid'],
                             m['rev'], head)
        if found is None:
            return
        repo, sha = found
        data = repo.commits[sha]['files'].get(unquote(m['file']))
        if data is None:
            return self._error(404, 'EntryNotFound', f'{unquote(m["file"])} does not exist', head=head)
        self._reply(200, data, ctype='application/octet-stream', head=head,
                    headers={'X-Repo-Commit': sha, 'ETag': f'"{git_blob_sha1(data)}"'})
