"""The documentation site (``mkdocs.yml``, ``docs/``).

* ``mkdocs build --strict`` passes: a warning fails it, and so does a dead
  internal link or anchor (``validation`` in ``mkdocs.yml``).
* Every fenced ``python`` block of the guides runs: the blocks of one page in
  order, in one namespace, as a reader would paste them (shell and text
  blocks are not run).
* Every public name of ``baselax``, ``baselax.agents``, ``baselax.envs``,
  ``baselax.anakin`` and ``baselax.experiment`` (their ``__all__``) has its
  entry in the built API reference, under the path it is imported from, and
  ``BaseAgent``/``DQN`` document what the seed's reference page did.
* In a real headless browser: the home page renders, search finds
  ``BaseAgent``, and the API page lists every name of ``baselax.agents``.

The site is built once (a module fixture), while the snippets run beside it
in one other process: JAX is imported once for all of them.
"""

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

import helpers

DOCS = os.path.join(helpers.REPO, "docs")
PACKAGES = ("baselax", "baselax.agents", "baselax.envs", "baselax.training",
            "baselax.anakin", "baselax.experiment", "baselax.replay")
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)

#: Runs the snippets of each page (argv[1]: a JSON file of {page: [[line,
#: code], ...]}) and writes {page: None or the traceback} to argv[2]. A
#: snippet is compiled under its page's name, padded to its line, so a
#: traceback points into the Markdown file.
RUNNER = r"""
import contextlib, io, json, sys, traceback
pages = json.load(open(sys.argv[1]))
results = {}
for page, snippets in pages.items():
  namespace = {"__name__": "__docs__"}
  results[page] = None
  for line, code in snippets:
    try:
      with contextlib.redirect_stdout(io.StringIO()):
        exec(compile("\n" * (line - 1) + code, page, "exec"), namespace)
    except BaseException:
      results[page] = traceback.format_exc()
      break
json.dump(results, open(sys.argv[2], "w"))
"""

#: What the seed's reference page (``shared/seed/baselax-agents-api.txt``)
#: documents: each member, and the parameters its docstring describes
#: (``__init__``: the class's own).
SEED = {
    "BaseAgent": {
        "__init__": ("network", "env", "learning_rate"),
        "OptimState": (), "OptimState.count": (), "OptimState.opt_state": (),
        "init_optimizer": ("params", "rng"), "init_params": ("rng",),
        "init_policy": ("rng",), "jit": (),
        "predict": ("params", "policy_state", "obs", "key", "evaluation"),
        "update": ("params", "optimizer_state", "data"),
    },
    "DQN": {
        "__init__": ("network", "env", "learning_rate", "discount_factor",
                     "epsilon_schedule", "target_update_interval"),
        "OptimState": (), "OptimState.count": (), "OptimState.opt_state": (),
        "Params": (), "Params.policy": (), "Params.target": (),
        "PolicyOutput": (), "PolicyOutput.actions": (), "PolicyOutput.q_values": (),
        "PolicyOutput.epsilon": (),
        "init_optimizer": (), "init_params": (), "init_policy": (), "jit": (),
        "predict": ("obs", "key", "evaluation"), "update": ("data",),
    },
}

#: The parameters the seed documents for DQN's methods, which DQN's own
#: docstrings (baselax/agents/dqn.py) describe again.
SEED_DQN_PARAMETERS = {
    "init_optimizer": ("params", "rng"), "init_params": ("rng",),
    "predict": ("params", "policy_state"), "update": ("params", "optimizer_state"),
}


def guide_pages():
  """Every Markdown page of the site, relative to ``docs/``."""
  found = []
  for folder, _, files in os.walk(DOCS):
    found += [os.path.relpath(os.path.join(folder, f), DOCS) for f in files
              if f.endswith(".md")]
  return sorted(found)


def python_snippets(page):
  """``[(line, code)]`` of the page's fenced ``python`` blocks."""
  text = open(os.path.join(DOCS, page), encoding="utf-8").read()
  return [(text.count("\n", 0, m.start(1)) + 1, m.group(1))
          for m in FENCE.finditer(text)]


PAGES_WITH_SNIPPETS = [page for page in guide_pages() if python_snippets(page)]


class Docs:
  """The built site, and the snippet run still going on beside it."""

  def __init__(self, tmp):
    snippets = os.path.join(tmp, "snippets.json")
    with open(snippets, "w") as f:
      json.dump({page: python_snippets(page) for page in PAGES_WITH_SNIPPETS}, f)
    self.results = os.path.join(tmp, "results.json")
    # One CPU device; the snippets train for a few thousand env steps, so
    # compiling is nearly all they cost: compile with XLA's cheapest passes.
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1",
               XLA_FLAGS="--xla_backend_optimization_level=0 "
                         "--xla_llvm_disable_expensive_passes=true")
    self.log = os.path.join(tmp, "snippets.log")
    with open(self.log, "w") as log:
      self.runner = subprocess.Popen(
          [sys.executable, "-c", RUNNER, snippets, self.results], cwd=tmp, env=env,
          stdout=log, stderr=subprocess.STDOUT)
    self.site = os.path.join(tmp, "site")
    self.build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", self.site],
        cwd=helpers.REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))

  @functools.cached_property
  def snippet_results(self):
    self.runner.wait(timeout=600)
    with open(self.log) as f:
      assert self.runner.returncode == 0, f.read()[-5000:]
    with open(self.results) as f:
      return json.load(f)

  def stop(self):
    if self.runner.poll() is None:
      self.runner.kill()
      self.runner.wait()

  def html(self, page):
    with open(os.path.join(self.site, page, "index.html"), encoding="utf-8") as f:
      return f.read()


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
  built = Docs(str(tmp_path_factory.mktemp("docs")))
  yield built
  built.stop()


@pytest.fixture(scope="module")
def site(docs):
  assert docs.build.returncode == 0, (
      f"mkdocs build --strict failed:\n{docs.build.stdout[-3000:]}\n"
      f"{docs.build.stderr[-6000:]}")
  return docs


def api_ids(site):
  """``{id: page}`` of every anchor in the built API reference."""
  ids = {}
  for page in os.listdir(os.path.join(site.site, "api")):
    if os.path.isdir(os.path.join(site.site, "api", page)):
      for anchor in re.findall(r'id="([^"]+)"', site.html(f"api/{page}")):
        ids.setdefault(anchor, page)
  return ids


def entry(site, page, identifier):
  """The HTML of one object's entry: from its heading to the next heading."""
  text = site.html(f"api/{page}")
  start = text.index(f'id="{identifier}"')
  following = re.compile(r'<h\d id="baselax\.').search(text, start + 1)
  return text[start:following.start() if following else len(text)]


def test_the_site_builds_in_strict_mode(site):
  assert "WARNING" not in site.build.stderr
  for page in ("index.html", "getting-started/index.html", "api/agents/index.html",
               "results/minatar/index.html", "results/faults/kills.png"):
    assert os.path.exists(os.path.join(site.site, page)), page


def test_the_dev_extra_installs_the_docs_toolchain():
  tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
  with open(os.path.join(helpers.REPO, "pyproject.toml"), "rb") as f:
    extras = tomllib.load(f)["project"]["optional-dependencies"]
  assert {"mkdocs", "mkdocs-material", "playwright"} <= {
      re.split(r"[\[<>=]", r)[0] for r in extras["docs"]}
  assert set(extras["docs"]) <= set(extras["dev"]), set(extras["docs"]) - set(extras["dev"])


def test_snippets_are_the_python_fences_of_a_page(tmp_path, monkeypatch):
  (tmp_path / "page.md").write_text(
      "# t\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n\n```text\n$ x\n```\n"
      "\n```python\ny = x + 1\n```\n")
  monkeypatch.setattr(sys.modules[__name__], "DOCS", str(tmp_path))
  assert python_snippets("page.md") == [(4, "x = 1\n"), (16, "y = x + 1\n")]
  # The guides that show Python keep showing it (and so keep running it).
  for page in ("guides/agents.md", "guides/anakin.md", "guides/environments.md",
               "guides/hostloop-atari.md"):
    assert page in PAGES_WITH_SNIPPETS, page


@pytest.mark.parametrize("page", PAGES_WITH_SNIPPETS)
def test_python_snippets_run(docs, page):
  error = docs.snippet_results[page]
  assert error is None, f"a snippet of docs/{page} failed:\n{error}"


def test_every_public_name_is_in_the_api_reference(site):
  ids = api_ids(site)
  missing = []
  for package in PACKAGES:
    module = __import__(package, fromlist=["__all__"])
    assert module.__all__, package
    missing += [f"{package}.{name}" for name in module.__all__
                if f"{package}.{name}" not in ids]
  assert not missing, f"not in the API reference (docs/api/*.md): {missing}"


@pytest.mark.parametrize("agent", sorted(SEED))
def test_agent_pages_document_what_the_seed_did(site, agent):
  for member, parameters in SEED[agent].items():
    identifier = f"baselax.agents.{agent}" + ("" if member == "__init__" else f".{member}")
    html = entry(site, "agents", identifier)
    for name in parameters:
      assert f"<code>{name}</code>" in html, f"{identifier} does not document {name}"


def test_dqn_methods_document_every_parameter_the_seed_did(site):
  for member, parameters in SEED_DQN_PARAMETERS.items():
    html = entry(site, "agents", f"baselax.agents.DQN.{member}")
    for name in parameters:
      assert f"<code>{name}</code>" in html, f"DQN.{member} does not document {name}"


def built_page(site, doc):
  """The built HTML of ``docs/<doc>`` (``use_directory_urls``: a folder each)."""
  folder, name = os.path.split(doc[:-len(".md")])
  if name not in ("index", "README"):
    folder = os.path.join(folder, name)
  return site.html(folder) if folder else open(
      os.path.join(site.site, "index.html"), encoding="utf-8").read()


def test_the_readme_is_short_and_links_into_the_docs(site):
  readme = open(os.path.join(helpers.REPO, "README.md"), encoding="utf-8").read()
  assert readme.count("\n") <= 300
  # The two set-up commands; .ci/run runs the second: its install first and
  # its pytest last, the lint, format and type checks between them.
  assert "```bash\npip install -e . && python experiments/anakin_dqn.py\n```" in readme
  assert '```bash\npip install -e ".[dev]" && pytest\n```' in readme
  with open(os.path.join(helpers.REPO, ".ci", "run")) as f:
    steps = [line for line in f.read().splitlines()
             if line and not line.startswith(("#", "set ", "cd "))]
  assert steps[0] == 'pip install -e ".[dev]"' and steps[-1] == "pytest", steps
  links = re.findall(r"\]\(([^)#]+)(?:#([^)]*))?\)", readme)
  assert sum(path.startswith("docs/") for path, _ in links) >= 10
  for path, anchor in links:
    if "://" in path:
      continue
    assert os.path.exists(os.path.join(helpers.REPO, path)), path
    if anchor:
      assert path.startswith("docs/") and path.endswith(".md"), path
      assert f'id="{anchor}"' in built_page(site, path[len("docs/"):]), f"{path}#{anchor}"


def chromium():
  for name in ("chromium", "chromium-browser", "google-chrome"):
    if shutil.which(name):
      return shutil.which(name)
  return None


class QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, *args):
    pass


def test_the_site_in_a_headless_browser(site):
  executable = chromium()
  if executable is None:
    pytest.skip("no Chromium to drive: install Debian's (apt-get install -y chromium); "
                "Playwright's own browser download is not needed")
  from playwright.sync_api import sync_playwright
  agents = __import__("baselax.agents", fromlist=["__all__"]).__all__
  server = http.server.ThreadingHTTPServer(
      ("127.0.0.1", 0), functools.partial(QuietHandler, directory=site.site))
  threading.Thread(target=server.serve_forever, daemon=True).start()
  root = f"http://127.0.0.1:{server.server_address[1]}"
  try:
    with sync_playwright() as playwright:
      browser = playwright.chromium.launch(executable_path=executable)
      page = browser.new_page()
      failed = []
      page.on("requestfailed", lambda request: failed.append(request.url))

      page.goto(f"{root}/")
      assert page.title().startswith("baselax")
      assert page.locator("article h1").inner_text().rstrip("¶") == "baselax"
      assert page.get_by_text("pip install -e . && python experiments/anakin_dqn.py").is_visible()
      assert page.locator("nav.md-nav--primary").get_by_text("Getting started").count()

      page.keyboard.press("/")                      # Material's search shortcut
      page.keyboard.type("BaseAgent")
      page.wait_for_selector(".md-search-result__item", timeout=20_000)
      links = page.locator(".md-search-result__item a")
      hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
      assert any("/api/agents/" in href for href in hrefs), hrefs

      page.goto(f"{root}/api/agents/")
      for name in agents:
        heading = page.locator(f'[id="baselax.agents.{name}"]')
        assert heading.is_visible(), name
        assert f"baselax.agents.{name}" in heading.inner_text(), name
      assert not failed, failed
      browser.close()
  finally:
    server.shutdown()
