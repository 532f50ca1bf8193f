#!/usr/bin/env python3
"""Deterministic generator of a web agency's data: site files and SQL dumps.

Writes what `benches/compare.sh` and `benches/dump_chunk_sizes.sh` push:

* a tree of a few WordPress-like client sites (`client-a` ... `client-d`):
  ~12,000 small text files (PHP, HTML, CSS, JS, 1-30 KB, log-uniform sizes)
  and ~200 incompressible media files (random bytes, 50 KB - 3 MB, ~300 MB).
  Sites on the same WordPress version share their core files and plugins
  come from a shared pool, so there is cross-site duplication as on a real
  shared host;
* a mysqldump-like dump (extended INSERTs split at mysqldump's default
  net_buffer_length) of a WordPress database, ~150 MB;
* "day 2": a few dozen files edited (as an intruder or an editor would), a
  few added; and the next day's dump, in which ~0.15% of the rows, spread
  through every table, were updated and a few rows appended.

Everything is derived from --seed: the same command gives the same bytes.

    gen_site.py day1 --tree DIR [--dump FILE]   # write the day-1 tree (DIR must not exist)
    gen_site.py day2 --tree DIR [--dump FILE]   # mutate a day-1 tree in place
    gen_site.py dump --day 1|2 FILE             # only a dump

--scale multiplies the number of files, media bytes and rows (default 1.0).
"""

import argparse
import math
import os
import re
import random
import sys

SITES = ["client-a", "client-b", "client-c", "client-d"]
# Two sites run the same WordPress release; the others lag behind.
CORE_VERSION = {"client-a": "6.4.3", "client-b": "6.4.3", "client-c": "6.4.2", "client-d": "6.3.1"}
THEMES = {"client-a": "boulangerie", "client-b": "cabinet-avocat", "client-c": "gite-rural", "client-d": "agence-immo"}
TEXT_EXT = (".php", ".html", ".css", ".js")
MEDIA_EXT = (".jpg", ".png", ".mp4", ".pdf", ".zip", ".webp")

WORDS = (
    "the of and to in is for on with as by at from that this be are it or an was "
    "post page site menu header footer widget sidebar content title author date "
    "comment reply user admin option setting plugin theme query loop template "
    "article section nav main button form input label select value field error "
    "bienvenue accueil contact devis horaires tarifs réservation actualités "
    "boulangerie pain croissant cabinet avocat conseil gîte chambre séjour "
    "appartement maison vente location agence immobilier quartier centre ville"
).split()
IDENT = (
    "wp get set the post meta query user option cache db html esc attr url "
    "admin ajax nonce filter action hook render init load save update delete "
    "item list count args data value key name id type status field block rest"
).split()


def rng_for(*parts):
    """A Random seeded by a string: stable across runs and Python versions."""
    return random.Random(":".join(str(p) for p in parts))


def ident(r, n=2):
    return "_".join(r.choice(IDENT) for _ in range(n))


def sentence(r, lo=6, hi=18):
    return " ".join(r.choices(WORDS, k=r.randint(lo, hi))).capitalize() + "."


def line_pool(seed, lang, n):
    """Lines of one language that files are assembled from."""
    r = rng_for(seed, "pool", lang)
    out = []
    for _ in range(n):
        k = r.randrange(8)
        a, b, c = ident(r), ident(r, 1), ident(r, 3)
        num = r.randrange(10000)
        if lang == "php":
            out.append([
                f"\t${a} = {b}( ${c}, {num} );",
                f"\tif ( empty( ${a} ) ) {{ return new WP_Error( '{c}', __( '{sentence(r, 3, 8)}' ) ); }}",
                f"function {c}( ${a}, ${b} = null ) {{",
                f"\t * @param array ${a} {sentence(r)}",
                f"\treturn apply_filters( '{c}', ${a}, ${b} );",
                f"\t\t'{a}' => '{sentence(r, 2, 6)}',",
                f"\tforeach ( ${a} as ${b} => ${c} ) {{ ${c}[] = (int) ${b}; }}",
                f"\t// {sentence(r)}",
            ][k])
        elif lang == "html":
            out.append([
                f'<div class="{b}-{a}" id="{c}-{num}">',
                f"  <p>{sentence(r, 8, 30)}</p>",
                f'  <a href="/{b}/{a}-{num}/" title="{sentence(r, 2, 5)}">{sentence(r, 2, 6)}</a>',
                f'  <img src="/wp-content/uploads/2023/{num % 12 + 1:02d}/{a}.jpg" alt="{sentence(r, 2, 5)}" loading="lazy">',
                f"  <h2>{sentence(r, 3, 8)}</h2>",
                "</div>",
                f'<li class="menu-item menu-item-{num}"><a href="/{a}/">{b}</a></li>',
                f"<!-- {sentence(r, 3, 10)} -->",
            ][k])
        elif lang == "css":
            out.append([
                f".{b}-{a} {{ margin: {num % 40}px {num % 17}px; padding: {num % 9}px; }}",
                f"#{c} .{b} {{ color: #{num * 7919 % 0xFFFFFF:06x}; font-size: {num % 30 / 10 + 0.8:.1f}rem; }}",
                f"@media (max-width: {num % 1000 + 320}px) {{ .{a} {{ display: none; }} }}",
                f".{a}:hover, .{a}:focus {{ background: rgba({num % 255}, {num * 3 % 255}, {num * 7 % 255}, .{num % 10}); }}",
                f"  border: 1px solid #{num * 31 % 0xFFFFFF:06x};",
                f"  transition: all .{num % 9 + 1}s ease-in-out;",
                f"/* {sentence(r, 3, 10)} */",
                "}",
            ][k])
        else:
            out.append([
                f"  var {b}{a.title().replace('_', '')} = document.querySelector('.{a}-{num}');",
                f"  {b}.addEventListener('{r.choice(['click', 'submit', 'load', 'change'])}', function (e) {{ {c}(e, {num}); }});",
                f"function {c}({a}, {b}) {{",
                f"  if (!{a} || {a}.length === {num % 10}) {{ return {b}; }}",
                f"  $.ajax({{ url: ajaxurl, data: {{ action: '{c}', nonce: '{num:x}' }} }});",
                f"  // {sentence(r)}",
                "}",
                f"  return {a}.map(function (x) {{ return x.{b} + {num}; }});",
            ][k])
    return out


class Text:
    """Assembles text files of a target size from per-language line pools."""

    def __init__(self, seed):
        self.seed = seed
        self.pools = {lang: line_pool(seed, lang, 6000) for lang in ("php", "html", "css", "js")}

    def make(self, key, ext, size):
        r = rng_for(self.seed, "file", key)
        lang = {".php": "php", ".html": "html", ".css": "css", ".js": "js"}[ext]
        pool = self.pools[lang]
        head = {
            "php": f"<?php\n/**\n * {sentence(r)}\n *\n * @package {ident(r)}\n */\n\n",
            "html": f"<!DOCTYPE html>\n<html lang=\"fr\">\n<head><title>{sentence(r, 2, 6)}</title></head>\n<body>\n",
            "css": f"/* Theme Name: {ident(r)}\n   Version: {r.randrange(1, 9)}.{r.randrange(20)} */\n",
            "js": f"/* {sentence(r)} */\n(function ($) {{\n  'use strict';\n",
        }[lang]
        parts = [head]
        n = len(head)
        while n < size:
            # Lines come from the pool; a quarter get a file-specific number
            # so files are not mere permutations of each other.
            batch = r.choices(pool, k=64)
            for i in range(0, 64, 4):
                batch[i] = batch[i].replace("0", str(r.randrange(10)), 1)
            chunk = "\n".join(batch) + "\n"
            parts.append(chunk)
            n += len(chunk)
        return "".join(parts).encode()[:size]


def text_size(r):
    # log-uniform 1-30 KB: many small files, a few larger ones
    return int(math.exp(r.uniform(math.log(1024), math.log(30 * 1024))))


def layout(seed, scale):
    """Every file of the day-1 tree: (relative path, kind, content key, size)."""
    files = []
    per_site = int(3000 * scale)
    n_core, n_plugins, n_theme = per_site * 60 // 100, per_site * 30 // 100, per_site * 10 // 100
    core_dirs = ["wp-admin", "wp-admin/includes", "wp-admin/css", "wp-admin/js", "wp-admin/network",
                 "wp-includes", "wp-includes/blocks", "wp-includes/js", "wp-includes/css",
                 "wp-includes/rest-api", "wp-includes/sodium_compat/src", "wp-includes/ID3"]
    plugin_pool = [f"{ident(rng_for(seed, 'plugin', i), 2).replace('_', '-')}-{i}" for i in range(24)]
    plugin_files = {p: 40 + rng_for(seed, "plugin-size", p).randrange(200) for p in plugin_pool}
    media_per_site = int(50 * scale)
    for site in SITES:
        ver = CORE_VERSION[site]
        for i in range(n_core):
            r = rng_for(seed, "core", i)
            d = r.choice(core_dirs)
            ext = r.choices(TEXT_EXT, weights=[6, 1, 2, 2])[0]
            name = f"{d}/{ident(r)}-{i}{ext}".replace("_", "-")
            # 30% of core files differ between any two releases.
            key = ("core", i, ver) if rng_for(seed, "core-ver", i, ver).random() < 0.3 else ("core", i)
            files.append((f"{site}/{name}", "text", key, text_size(r)))
        r = rng_for(seed, "plugins", site)
        picked, total = [], 0
        for p in r.sample(plugin_pool, len(plugin_pool)):
            if total >= n_plugins:
                break
            take = min(plugin_files[p], n_plugins - total)
            picked.append((p, take))
            total += take
        for p, take in picked:
            for j in range(take):
                rj = rng_for(seed, "plugin-file", p, j)
                ext = rj.choices(TEXT_EXT, weights=[6, 1, 2, 2])[0]
                sub = rj.choice(["", "includes/", "admin/", "assets/", "templates/", "languages/"])
                files.append((f"{site}/wp-content/plugins/{p}/{sub}{ident(rj)}-{j}{ext}".replace("_", "-"),
                              "text", ("plugin", p, j), text_size(rj)))
        theme = THEMES[site]
        for j in range(n_theme):
            rj = rng_for(seed, "theme-file", site, j)
            ext = rj.choices(TEXT_EXT, weights=[5, 2, 3, 2])[0]
            sub = rj.choice(["", "template-parts/", "inc/", "assets/css/", "assets/js/", "page-templates/"])
            files.append((f"{site}/wp-content/themes/{theme}/{sub}{ident(rj)}-{j}{ext}".replace("_", "-"),
                          "text", ("theme", site, j), text_size(rj)))
        for j in range(media_per_site):
            rj = rng_for(seed, "media", site, j)
            size = rj.randint(50 * 1024, 3 * 1024 * 1024)
            ext = rj.choice(MEDIA_EXT)
            files.append((f"{site}/wp-content/uploads/{rj.choice([2022, 2023, 2024])}/{rj.randint(1, 12):02d}/"
                          f"{ident(rj, 1)}-{j}{ext}", "media", ("media", site, j), size))
        for name in ("index.php", "wp-config.php", "wp-login.php", ".htaccess"):
            ext = ".php" if name != ".htaccess" else ".css"
            files.append((f"{site}/{name}", "text", ("root", site, name), text_size(rng_for(seed, site, name))))
    return files


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_tree(root, seed, scale):
    if os.path.exists(root):
        sys.exit(f"gen_site.py: {root} exists; give a new directory for the day-1 tree")
    text = Text(seed)
    cache = {}
    n_text = n_media = b_text = b_media = 0
    for rel, kind, key, size in layout(seed, scale):
        if kind == "media":
            data = rng_for(seed, "bytes", *key).randbytes(size)
            n_media += 1
            b_media += size
        else:
            ext = os.path.splitext(rel)[1] if not rel.endswith(".htaccess") else ".css"
            ck = (key, ext, size)
            if ck not in cache:
                cache[ck] = text.make(key, ext, size)
            data = cache[ck]
            n_text += 1
            b_text += len(data)
        write_file(os.path.join(root, rel), data)
    print(f"day 1 tree: {n_text} text files ({b_text / 1e6:.1f} MB), {n_media} media files "
          f"({b_media / 1e6:.1f} MB) in {root}", file=sys.stderr)


DAY2_MARKER = "client-b/wp-content/uploads/2024/11/wp-cache-day2.php"


def mutate_tree(root, seed):
    """Day 2: edit 40 text files, add 4 PHP files and 2 media files."""
    if not os.path.isdir(root):
        sys.exit(f"gen_site.py: {root} is not a directory; write day 1 first")
    if os.path.exists(os.path.join(root, DAY2_MARKER)):
        sys.exit(f"gen_site.py: day 2 was already applied to {root}")
    texts = []
    for d, dirs, names in os.walk(root):
        dirs.sort()
        for n in sorted(names):
            if n.endswith(TEXT_EXT):
                texts.append(os.path.relpath(os.path.join(d, n), root))
    r = rng_for(seed, "day2")
    edited = r.sample(texts, 40)
    for rel in edited:
        p = os.path.join(root, rel)
        with open(p, "rb") as f:
            data = f.read()
        at = r.randrange(len(data) + 1)
        at = data.rfind(b"\n", 0, at) + 1
        if rel.endswith(".php") and r.random() < 0.5:
            ins = b"@eval(base64_decode($_POST['" + ident(r).encode() + b"']));\n"
        else:
            ins = ("/* " + sentence(r) + " */\n").encode()
        data = data[:at] + ins + data[at:]
        # and a small in-place change further on, like a changed setting
        if len(data) > 200:
            q = r.randrange(len(data) - 8)
            data = data[:q] + b"12345678" + data[q + 8:]
        with open(p, "wb") as f:
            f.write(data)
    text = Text(seed)
    added = [DAY2_MARKER,
             "client-a/wp-content/plugins/contact-form-update/contact-form-update.php",
             "client-c/wp-includes/class-wp-upgrader-day2.php",
             "client-d/wp-content/themes/agence-immo/inc/offers-2024.php"]
    for i, rel in enumerate(added):
        write_file(os.path.join(root, rel), text.make(("day2", i), ".php", 4000 + 3000 * i))
    media = ["client-a/wp-content/uploads/2024/11/vitrine-noel.jpg",
             "client-d/wp-content/uploads/2024/11/visite-appartement.mp4"]
    for i, rel in enumerate(media):
        write_file(os.path.join(root, rel), rng_for(seed, "day2-media", i).randbytes(1024 * 1024 * (i + 1)))
    print(f"day 2: edited {len(edited)} files, added {len(added) + len(media)} in {root}", file=sys.stderr)


# ---------------------------------------------------------------- SQL dump


def esc(s):
    return s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


class Tables:
    """The rows of a WordPress database, regenerated identically each time."""

    def __init__(self, seed, scale):
        self.seed = seed
        self.n_posts = int(14000 * scale)
        self.n_meta = int(300000 * scale)
        self.n_comments = int(50000 * scale)
        self.n_options = int(3000 * scale)
        r = rng_for(seed, "sentences")
        self.sentences = [sentence(r, 5, 25) for _ in range(20000)]

    def post(self, r, i, day):
        paras = r.randint(3, 25)
        body = "\n\n".join(
            "<!-- wp:paragraph -->\n<p>" + " ".join(r.choices(self.sentences, k=r.randint(2, 8))) + "</p>\n<!-- /wp:paragraph -->"
            for _ in range(paras))
        title = " ".join(r.choices(WORDS, k=r.randint(2, 8))).capitalize()
        d = f"20{r.randint(15, 24)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"
        slug = title.lower().replace(" ", "-")[:60]
        return (f"({i},{r.randint(1, 12)},'{d}','{d}','{esc(body)}','{esc(title)}','','publish','open','open','',"
                f"'{esc(slug)}','','','{d}','{d}','',0,'https://client-{r.choice('abcd')}.fr/?p={i}',0,'post','',{r.randint(0, 40)})")

    def meta(self, r, i):
        k = r.choice(["_edit_lock", "_edit_last", "_thumbnail_id", "_wp_page_template", "_yoast_wpseo_title",
                      "_yoast_wpseo_metadesc", "_price", "_stock", "views", "_wp_attached_file"])
        if k in ("_yoast_wpseo_title", "_yoast_wpseo_metadesc"):
            v = r.choice(self.sentences)
        elif k == "_wp_attached_file":
            v = f"2023/{r.randint(1, 12):02d}/{ident(r)}.jpg"
        else:
            v = str(r.randrange(10 ** r.randint(1, 10)))
        return f"({i},{r.randint(1, self.n_posts)},'{k}','{esc(v)}')"

    def comment(self, r, i):
        body = " ".join(r.choices(self.sentences, k=r.randint(1, 6)))
        d = f"20{r.randint(18, 24)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00"
        who = ident(r, 1)
        return (f"({i},{r.randint(1, self.n_posts)},'{who}','{who}@example.fr','','192.0.2.{r.randint(1, 254)}','{d}','{d}',"
                f"'{esc(body)}',0,'{r.choice('01')}','Mozilla/5.0 (X11; Linux x86_64)','comment',0,0)")

    def option(self, r, i):
        n = r.randint(1, 30)
        arr = ";".join(f's:{len(k)}:"{k}";i:{r.randrange(100000)}' for k in (ident(r) for _ in range(n)))
        return f"({i},'{ident(r, 3)}_{i}','a:{n}:{{{esc(arr)}}}','{r.choice(['yes', 'no'])}')"

    def update(self, r, row, fn, i):
        """An edited row: some words of a text column replaced, or (for a row
        without text) a new value, as an UPDATE would leave it."""
        spaces = [m.start() for m in re.finditer(" ", row)]
        if not spaces:
            return fn(r, i)
        p = r.choice(spaces)
        q = row.find(" ", p + 1)
        if q < 0 or q - p > 40:
            q = p
        return row[:p] + " " + esc(r.choice(self.sentences)) + row[q:]

    def table_rows(self, name, day):
        """(row count, row function) of day `day`; day 2 updates ~0.15% of rows."""
        base = {"wp_posts": (self.n_posts, lambda r, i: self.post(r, i, day)),
                "wp_postmeta": (self.n_meta, self.meta),
                "wp_comments": (self.n_comments, self.comment),
                "wp_options": (self.n_options, self.option)}[name]
        n, fn = base
        extra = {"wp_posts": 3, "wp_postmeta": 20, "wp_comments": 12, "wp_options": 1}[name] if day == 2 else 0
        changed = set()
        if day == 2:
            rc = rng_for(self.seed, "changed", name)
            changed = set(rc.sample(range(1, n + 1), max(1, round(n * 0.0015))))
        return n, extra, changed, fn


def net_buffer_split(header, rows, limit=1046528):
    """Yields INSERT statements as mysqldump --extended-insert does: a new
    statement when the next row would pass net_buffer_length."""
    cur, size = [], len(header)
    for row in rows:
        if cur and size + len(row) + 1 > limit:
            yield header + ",".join(cur) + ";\n"
            cur, size = [], len(header)
        cur.append(row)
        size += len(row) + 1
    if cur:
        yield header + ",".join(cur) + ";\n"


SCHEMA = {
    "wp_posts": "`ID` bigint unsigned NOT NULL AUTO_INCREMENT,\n  `post_author` bigint unsigned NOT NULL DEFAULT '0',\n  `post_date` datetime NOT NULL,\n  `post_date_gmt` datetime NOT NULL,\n  `post_content` longtext NOT NULL,\n  `post_title` text NOT NULL,\n  `post_excerpt` text NOT NULL,\n  `post_status` varchar(20) NOT NULL DEFAULT 'publish',\n  `comment_status` varchar(20) NOT NULL DEFAULT 'open',\n  `ping_status` varchar(20) NOT NULL DEFAULT 'open',\n  `post_password` varchar(255) NOT NULL DEFAULT '',\n  `post_name` varchar(200) NOT NULL DEFAULT '',\n  `to_ping` text NOT NULL,\n  `pinged` text NOT NULL,\n  `post_modified` datetime NOT NULL,\n  `post_modified_gmt` datetime NOT NULL,\n  `post_content_filtered` longtext NOT NULL,\n  `post_parent` bigint unsigned NOT NULL DEFAULT '0',\n  `guid` varchar(255) NOT NULL DEFAULT '',\n  `menu_order` int NOT NULL DEFAULT '0',\n  `post_type` varchar(20) NOT NULL DEFAULT 'post',\n  `post_mime_type` varchar(100) NOT NULL DEFAULT '',\n  `comment_count` bigint NOT NULL DEFAULT '0',\n  PRIMARY KEY (`ID`)",
    "wp_postmeta": "`meta_id` bigint unsigned NOT NULL AUTO_INCREMENT,\n  `post_id` bigint unsigned NOT NULL DEFAULT '0',\n  `meta_key` varchar(255) DEFAULT NULL,\n  `meta_value` longtext,\n  PRIMARY KEY (`meta_id`)",
    "wp_comments": "`comment_ID` bigint unsigned NOT NULL AUTO_INCREMENT,\n  `comment_post_ID` bigint unsigned NOT NULL DEFAULT '0',\n  `comment_author` tinytext NOT NULL,\n  `comment_author_email` varchar(100) NOT NULL DEFAULT '',\n  `comment_author_url` varchar(200) NOT NULL DEFAULT '',\n  `comment_author_IP` varchar(100) NOT NULL DEFAULT '',\n  `comment_date` datetime NOT NULL,\n  `comment_date_gmt` datetime NOT NULL,\n  `comment_content` text NOT NULL,\n  `comment_karma` int NOT NULL DEFAULT '0',\n  `comment_approved` varchar(20) NOT NULL DEFAULT '1',\n  `comment_agent` varchar(255) NOT NULL DEFAULT '',\n  `comment_type` varchar(20) NOT NULL DEFAULT 'comment',\n  `comment_parent` bigint unsigned NOT NULL DEFAULT '0',\n  `user_id` bigint unsigned NOT NULL DEFAULT '0',\n  PRIMARY KEY (`comment_ID`)",
    "wp_options": "`option_id` bigint unsigned NOT NULL AUTO_INCREMENT,\n  `option_name` varchar(191) NOT NULL DEFAULT '',\n  `option_value` longtext NOT NULL,\n  `autoload` varchar(20) NOT NULL DEFAULT 'yes',\n  PRIMARY KEY (`option_id`)",
}


def write_dump(path, seed, scale, day):
    t = Tables(seed, scale)
    rows_total = rows_changed = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write("-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n"
                  "-- Host: localhost    Database: agency_sites\n"
                  "-- ------------------------------------------------------\n-- Server version\t8.0.36\n\n"
                  "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"
                  "/*!50503 SET NAMES utf8mb4 */;\n/*!40103 SET TIME_ZONE='+00:00' */;\n"
                  "/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n\n")
        for name in ("wp_comments", "wp_options", "wp_postmeta", "wp_posts"):
            n, extra, changed, fn = t.table_rows(name, day)
            # One generator stream per table, so day 2 rebuilds day 1's rows
            # exactly; a changed row draws from its own stream.
            r = rng_for(seed, "rows", name)

            def rows():
                for i in range(1, n + 1):
                    row = fn(r, i)
                    if i in changed:
                        row = t.update(rng_for(seed, "update", name, i), row, fn, i)
                    yield row
                for i in range(n + 1, n + extra + 1):
                    yield fn(rng_for(seed, "append", name, i), i)

            out.write(f"--\n-- Table structure for table `{name}`\n--\n\nDROP TABLE IF EXISTS `{name}`;\n"
                      f"CREATE TABLE `{name}` (\n  {SCHEMA[name]}\n) ENGINE=InnoDB AUTO_INCREMENT={n + extra + 1} "
                      f"DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;\n\n"
                      f"--\n-- Dumping data for table `{name}`\n--\n\nLOCK TABLES `{name}` WRITE;\n"
                      f"/*!40000 ALTER TABLE `{name}` DISABLE KEYS */;\n")
            for stmt in net_buffer_split(f"INSERT INTO `{name}` VALUES ", rows()):
                out.write(stmt)
            out.write(f"/*!40000 ALTER TABLE `{name}` ENABLE KEYS */;\nUNLOCK TABLES;\n\n")
            rows_total += n + extra
            rows_changed += len(changed)
        out.write("/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n\n"
                  f"-- Dump completed on 2024-11-{24 + day} 03:00:0{day}\n")
    print(f"dump day {day}: {os.path.getsize(path) / 1e6:.1f} MB, {rows_total} rows, "
          f"{rows_changed} updated ({100 * rows_changed / max(rows_total, 1):.2f}%) in {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["day1", "day2", "dump"])
    ap.add_argument("file", nargs="?", help="dump file, for `dump`")
    ap.add_argument("--tree", help="site tree directory")
    ap.add_argument("--dump", help="write this day's dump to this file")
    ap.add_argument("--day", type=int, choices=[1, 2], help="for `dump`")
    ap.add_argument("--seed", default="snap-bench-1")
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_intermixed_args()
    if a.what == "dump":
        if not a.file or not a.day:
            ap.error("dump needs --day 1|2 and FILE")
        write_dump(a.file, a.seed, a.scale, a.day)
        return
    day = 1 if a.what == "day1" else 2
    if not a.tree and not a.dump:
        ap.error(f"{a.what} needs --tree DIR and/or --dump FILE")
    if a.tree:
        if day == 1:
            write_tree(a.tree, a.seed, a.scale)
        else:
            mutate_tree(a.tree, a.seed)
    if a.dump:
        write_dump(a.dump, a.seed, a.scale, day)


if __name__ == "__main__":
    main()
