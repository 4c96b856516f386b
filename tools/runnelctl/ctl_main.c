/*
 * ctl_main.c — runnelctl's driver: global options, finding the command in
 * the table (ctl_cmds.c) and parsing its arguments, then running it; and the
 * runtime every noun shares: the lazy client, the clocks, the SIGINT/SIGTERM
 * flag of --follow and --watch loops, and the --watch/--interval options.
 * Output goes through ctl_out.c only.
 */
#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl_int.h"
#include "runnel/units.h"

/* ==== arguments ========================================================== */

const char *ctl_arg(const ctl_args_t *a, const char *name) {
  const char *v = NULL;
  for (size_t i = 0; i < a->nvals; i++)
    if (strcmp(a->vals[i].opt->name, name) == 0) v = a->vals[i].val;
  return v;
}

size_t ctl_arg_all(const ctl_args_t *a, const char *name, const char **vals, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < a->nvals; i++)
    if (strcmp(a->vals[i].opt->name, name) == 0) {
      if (n < cap) vals[n] = a->vals[i].val;
      n++;
    }
  return n;
}

static bool is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

/* Parse argv[0, argc) for cmd into *a. Returns 0, 1 when --help was given
 * (printed), or CTL_EXIT_USAGE after printing the usage error. */
static int parse_args(ctl_t *c, const ctl_cmd_t *cmd, int argc, char **argv, ctl_args_t *a) {
  memset(a, 0, sizeof *a);
  a->cmd = cmd;
  a->vals = calloc((size_t)argc + 1, sizeof *a->vals);
  if (a->vals == NULL) abort();
  char what[64];
  snprintf(what, sizeof what, "%s%s%s", cmd->noun, cmd->verb ? " " : "", cmd->verb ? cmd->verb : "");
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    if (is_help(s)) {
      ctl_help_cmd(c, cmd);
      return 1;
    }
    const ctl_opt_t *o = NULL;
    const char *val = NULL;
    if (strncmp(s, "--", 2) == 0 && s[2] != '\0') {
      const char *eq = strchr(s, '=');
      size_t nl = eq ? (size_t)(eq - s) : strlen(s);
      for (const ctl_opt_t *k = cmd->opts; k && k->name; k++)
        if (strlen(k->name) == nl && strncmp(k->name, s, nl) == 0) o = k;
      if (o == NULL) return ctl_usage(c, "%s: unknown option %.*s", what, (int)nl, s);
      if (eq) {
        if (o->metavar == NULL) return ctl_usage(c, "%s takes no value", o->name);
        val = eq + 1;
      }
    } else if (s[0] == '-' && s[1] != '\0' && !isdigit((unsigned char)s[1])) {
      for (const ctl_opt_t *k = cmd->opts; k && k->name; k++)
        if (k->short_name && k->short_name == s[1]) o = k;
      if (o == NULL) return ctl_usage(c, "%s: unknown option -%c", what, s[1]);
      if (s[2] != '\0') {
        if (o->metavar == NULL) return ctl_usage(c, "-%c takes no value", s[1]);
        val = s + 2;
      }
    } else {
      if (a->npos >= cmd->max_pos || a->npos >= CTL_MAXPOS) return ctl_usage(c, "%s: unexpected argument \"%s\"", what, s);
      a->pos[a->npos++] = s;
      continue;
    }
    if (o->metavar && val == NULL) {
      if (i + 1 >= argc) return ctl_usage(c, "%s needs a value (%s)", o->name, o->metavar);
      val = argv[++i];
    }
    a->vals[a->nvals].opt = o;
    a->vals[a->nvals].val = val ? val : "";
    a->nvals++;
  }
  if (a->npos < cmd->min_pos)
    return ctl_usage(c, "%s: %s %s required", what, cmd->args, strchr(cmd->args, ' ') ? "are" : "is");
  return 0;
}

/* ==== main ================================================================ */

int ctl_main(int argc, char **argv, FILE *in, FILE *out, FILE *err) {
  ctl_t c = {.in = in, .out = out, .err = err};
  c.out_tty = isatty(fileno(out)) == 1;
  c.err_tty = isatty(fileno(err)) == 1;
  const char *env = getenv("RUNNEL_BROKER");
  c.broker = env && *env ? env : RN_DEFAULT_BROKER;
  /* global options may appear anywhere */
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (rest == NULL) return CTL_EXIT_FAIL;
  int nrest = 0, status = -1;
  bool version = false, man = false;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (strcmp(s, "--json") == 0) {
      c.json = true;
    } else if (strcmp(s, "--version") == 0) {
      version = true;
    } else if (strcmp(s, "--print-man") == 0) {
      man = true;
    } else if (strcmp(s, "--broker") == 0) {
      if (i + 1 >= argc) {
        status = ctl_usage(&c, "--broker needs HOST:PORT");
        break;
      }
      c.broker = argv[++i];
    } else if (strncmp(s, "--broker=", 9) == 0) {
      c.broker = s + 9;
    } else {
      rest[nrest++] = argv[i];
    }
  }
  if (status >= 0) {
    /* usage error printed */
  } else if (version) {
    if (c.json) {
      json_t *o = json_object();
      json_object_set_new(o, "version", json_string(RN_CTL_VERSION));
      ctl_print_json(&c, o);
    } else {
      ctl_print(&c, "runnelctl %s\n", RN_CTL_VERSION);
    }
    status = 0;
  } else if (man) {
    ctl_print_man(&c);
    status = 0;
  } else if (nrest == 0) {
    ctl_help_main(&c, err);
    status = CTL_EXIT_USAGE;
  } else if (is_help(rest[0]) || strcmp(rest[0], "help") == 0) {
    ctl_help_main(&c, out);
    status = 0;
  } else {
    const char *noun = rest[0];
    if (strcmp(noun, "streams") == 0) noun = "stream";
    if (strcmp(noun, "groups") == 0) noun = "group";
    const ctl_cmd_t *cmd = NULL;
    bool noun_known = false, has_verbs = false;
    for (size_t i = 0; i < ctl_ncmds; i++) {
      if (strcmp(ctl_cmds[i].noun, noun) != 0) continue;
      noun_known = true;
      if (ctl_cmds[i].verb == NULL) {
        cmd = &ctl_cmds[i];
        break;
      }
      has_verbs = true;
    }
    int skip = 1;
    if (!noun_known) {
      status = ctl_usage(&c, "unknown command \"%s\"", rest[0]);
    } else if (has_verbs) {
      if (nrest < 2) {
        c.out = err;
        ctl_help_noun(&c, noun);
        c.out = out;
        status = CTL_EXIT_USAGE;
      } else if (is_help(rest[1])) {
        ctl_help_noun(&c, noun);
        status = 0;
      } else {
        const char *verb = strcmp(rest[1], "ls") == 0 ? "list" : rest[1];
        for (size_t i = 0; i < ctl_ncmds && !cmd; i++)
          if (strcmp(ctl_cmds[i].noun, noun) == 0 && strcmp(ctl_cmds[i].verb, verb) == 0) cmd = &ctl_cmds[i];
        if (cmd == NULL) status = ctl_usage(&c, "unknown verb \"%s %s\"", noun, rest[1]);
        skip = 2;
      }
    }
    if (cmd && status < 0) {
      ctl_args_t a;
      int rc = parse_args(&c, cmd, nrest - skip, rest + skip, &a);
      if (rc == 1)
        status = 0;
      else if (rc)
        status = rc;
      else
        status = cmd->run(&c, &a);
      free(a.vals);
    }
  }
  free(rest);
  rn_client_destroy(c.cl);
  return ctl_out_finish(&c, status);
}

/* ==== runtime shared by the nouns ========================================= */

int64_t ctl_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ctl_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

rn_err_t ctl_client(ctl_t *c) {
  if (c->cl) return 0;
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = c->broker;
  conf.request_timeout_ms = 30000;
  rn_err_t err = rn_client_new(&conf, &c->cl);
  if (err) ctl_fail(c, err, "broker %s", c->broker);
  return err;
}

/* --watch / --interval, shared with status: *interval_ms = 0 without --watch. */
int ctl_watch_args(ctl_t *c, const ctl_args_t *a, int64_t *interval_ms) {
  const char *iv = ctl_arg(a, "--interval");
  *interval_ms = 0;
  if (ctl_arg(a, "--watch") == NULL) {
    if (iv) return ctl_usage(c, "--interval needs --watch");
    return 0;
  }
  *interval_ms = 2000;
  if (iv) {
    char why[256];
    if (rn_parse_duration_ms(iv, interval_ms, why, sizeof why) != 0) return ctl_usage(c, "--interval: %s", why);
    if (*interval_ms < 100) return ctl_usage(c, "--interval: at least 100ms");
  }
  return 0;
}

volatile int ctl_stop;

static void on_stop(int sig) {
  (void)sig;
  ctl_stop = 1;
}

void ctl_catch_signals(bool on) {
  static struct sigaction old_int, old_term;
  static bool caught;
  if (on && !caught) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    ctl_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    caught = true;
  } else if (!on && caught) {
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    caught = false;
  }
}

void ctl_nap(int64_t ms) {
  /* nanosleep returns early (EINTR) when a caught signal arrives */
  int64_t until = ctl_mono_ms() + ms;
  while (!ctl_stop) {
    int64_t left = until - ctl_mono_ms();
    if (left <= 0) break;
    if (left > 100) left = 100;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000000L};
    nanosleep(&ts, NULL);
  }
}
