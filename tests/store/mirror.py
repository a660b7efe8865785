#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A local mirror for the store tests: one server speaks both the Hugging Face hub API
# (/api/models/ORG/REPO[/tree/main], /ORG/REPO/resolve/main/FILE) and the Ollama registry API
# (/v2/NS/NAME/manifests/TAG, /v2/NS/NAME/blobs/sha256:HEX) over the files in ROOT/ORG/REPO/,
# and redirects every download to a second server on another port (a "CDN", as the hub does).
# Faults are chosen by the repository's name: "cut" (the body stops halfway unless the request
# has a Range), "badsum" (the advertised sha256 is wrong), "private" (401 without the token
# "Bearer secret-token"), "slow" (64 KiB every 50 ms), "flaky" (the first download answers 503),
# "nolfs" (the listing gives no LFS oid: the sha256 is in the X-Linked-Etag of the redirect),
# "stall" (the body stops halfway for 30 s unless the request has a Range), "badoid" (the git
# blob id of the files without LFS is wrong).
# The hub listing gives each file its git blob id ("oid", the SHA-1 of "blob <size>\0" and the
# bytes) and, for *.gguf and *.safetensors, its LFS sha256; sub-folders are listed as
# "directory" entries (not descended into, as the hub's tree without ?recursive).
# GET /_stats answers {"downloads": {path: count}} of the CDN's file requests, "ranges": {path:
# count} of those with a Range header, and "auth_on_cdn": the files the CDN was sent an
# Authorization header for.
import argparse
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = ""
CDN_PORT = 0
STATS = {}
RANGES = {}
AUTH_ON_CDN = []  # files the CDN was sent a token for (it must not be)
LOCK = threading.Lock()
SHA = {}


def sha256_of(path):
    if path not in SHA:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        SHA[path] = h.hexdigest()
    return SHA[path]


def git_oid_of(path):
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def advertised(repo, path):
    digest = sha256_of(path)
    if "badsum" in repo:
        digest = ("0" if digest[0] != "0" else "1") + digest[1:]
    return digest


def repo_dir(org, repo):
    d = os.path.join(ROOT, org, repo)
    return d if os.path.isdir(d) and ".." not in (org, repo) else None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self, repo):
        if "private" not in repo:
            return True
        if self.headers.get("Authorization") == "Bearer secret-token":
            return True
        self.send_json(401, {"error": "Invalid credentials in Authorization header"})
        return False

    def redirect(self, org, repo, name, linked_etag=None):
        self.send_response(302)
        if linked_etag:
            self.send_header("X-Linked-Etag", '"%s"' % linked_etag)
        self.send_header("Location", "http://127.0.0.1:%d/cdn/%s/%s/%s" % (CDN_PORT, org, repo, name))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == ["_stats"]:
            with LOCK:
                return self.send_json(200, {"downloads": dict(STATS), "ranges": dict(RANGES),
                                            "auth_on_cdn": list(AUTH_ON_CDN)})
        if parts[0] == "cdn" and len(parts) == 4:
            return self.serve_file(parts[1], parts[2], parts[3])
        if parts[:2] == ["api", "models"] and len(parts) in (4, 6):
            return self.hub_tree(parts[2], parts[3], len(parts) == 4)
        if len(parts) == 5 and parts[2:4] == ["resolve", "main"]:
            d = repo_dir(parts[0], parts[1])
            if not d or not os.path.isfile(os.path.join(d, parts[4])):
                return self.send_json(404, {"error": "Entry not found"})
            if self.authorized(parts[1]):
                self.redirect(parts[0], parts[1], parts[4],
                              advertised(parts[1], os.path.join(d, parts[4])))
            return
        if parts[0] == "v2" and len(parts) == 5:
            return self.registry(parts[1], parts[2], parts[3], parts[4])
        self.send_json(404, {"error": "not found"})

    def hub_tree(self, org, repo, info):
        d = repo_dir(org, repo)
        if not d:
            return self.send_json(404, {"error": "Repository not found"})
        if not self.authorized(repo):
            return
        files = []
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if os.path.isdir(path):
                files.append({"type": "directory", "path": name, "size": 0, "oid": "d" * 40})
                continue
            size = os.path.getsize(path)
            oid = git_oid_of(path)
            lfs = name.endswith((".gguf", ".safetensors")) and "nolfs" not in repo
            if "badoid" in repo and not lfs:
                oid = ("0" if oid[0] != "0" else "1") + oid[1:]
            entry = {"type": "file", "path": name, "size": size, "oid": oid}
            if lfs:
                entry["lfs"] = {"oid": advertised(repo, path), "size": size, "pointerSize": 134}
            files.append(entry)
        if info:
            return self.send_json(200, {"id": org + "/" + repo,
                                        "siblings": [{"rfilename": f["path"]} for f in files]})
        self.send_json(200, files)

    def registry(self, ns, name, kind, ref):
        d = repo_dir(ns, name)
        if not d:
            return self.send_json(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        files = sorted(os.listdir(d))
        if kind == "manifests":
            match = [f for f in files if ref.lower() in f.lower()]
            if not match:
                return self.send_json(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
            path = os.path.join(d, match[0])
            return self.send_json(200, {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "digest": "sha256:" + "e" * 64, "size": 2},
                "layers": [{"mediaType": "application/vnd.ollama.image.model",
                            "digest": "sha256:" + advertised(name, path),
                            "size": os.path.getsize(path)}]})
        for f in files:
            if ref == "sha256:" + advertised(name, os.path.join(d, f)):
                return self.redirect(ns, name, f)
        self.send_json(404, {"errors": [{"code": "BLOB_UNKNOWN"}]})

    def serve_file(self, org, repo, name):
        d = repo_dir(org, repo)
        path = os.path.join(d, name) if d else ""
        if not d or not os.path.isfile(path):
            return self.send_json(404, {"error": "not found"})
        key = "/".join((org, repo, name))
        with LOCK:
            STATS[key] = STATS.get(key, 0) + 1
            first = STATS[key] == 1
            if self.headers.get("Range"):
                RANGES[key] = RANGES.get(key, 0) + 1
            if self.headers.get("Authorization"):
                AUTH_ON_CDN.append(key)
        if "flaky" in repo and first:
            return self.send_json(503, {"error": "try again"})
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                return self.end_headers()
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", '"%s"' % sha256_of(path))
        self.end_headers()
        body = data[start:]
        if "stall" in repo and not rng:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(30)
            return
        if "cut" in repo and not rng:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        step = 64 << 10
        for i in range(0, len(body), step):
            self.wfile.write(body[i:i + step])
            if "slow" in repo:
                time.sleep(0.05)


class Server(ThreadingHTTPServer):
    # A client that goes away mid-body (a killed pull) is expected, not an error to print.
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    global ROOT, CDN_PORT
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    ROOT = args.root
    cdn = Server(("127.0.0.1", 0), Handler)
    hub = Server(("127.0.0.1", 0), Handler)
    CDN_PORT = cdn.server_address[1]
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (hub.server_address[1], CDN_PORT))
    os.rename(tmp, args.port_file)
    # Ends with the test that started it, even when that test crashed.
    parent = os.getppid()

    def watch_parent():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        hub.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
