/*
 * BM25 ranking for the search discovery mode: a small inverted-free index (one sorted term list
 * per document) over the curated operations, which number at most a few thousand, so a linear
 * scan per query term is fast enough and keeps the code obvious. Terms are interned in one
 * jansson object (term -> id); documents hold (id, frequency per field) sorted by id.
 *
 * Scoring is Okapi BM25 with the non-negative idf of Lucene, per field f of weight w_f:
 *
 *   score(D, Q) = sum over distinct q in Q, over fields f, of
 *                 w_f * wq * idf(q) * tf_f * (k1 + 1) / (tf_f + k1 * (1 - b + b * |D_f| / avgdl_f))
 *   idf(q)      = ln(1 + (N - df + 0.5) / (df + 0.5))
 *
 * (wq: the query term's weight, 1 for a word, less for a compound part). openapi_bm25_new() is
 * that with one field of weight 1 and the plain analyzer; openapi_bm25_new_fields() adds the API
 * vocabulary analyzer (stop words, camelCase, vocabulary groups, compounds, phrasal verbs, and in
 * queries the values left out, abbreviations, a noun used as a verb, a preamble dropped; nouns
 * as the verbs they derive from, British spellings as American ones) and five factors after the
 * sum: coverage, the name prior, the name's unmatched words, the verb's kind and, for a plural
 * request to read, the GETs of one item (see openapi.h and docs/openapi.md, "Discovery modes").
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "openapi/openapi-int.h"

#define BM25_K1 1.2
#define BM25_B 0.75
#define BM25_TOKEN_MAX 64        /* longer runs are cut (still one token) */
#define BM25_GROUP_WEIGHT 1.0    /* a group token counts as much as the word (which matches both) */
#define BM25_COMPOUND_WEIGHT 0.5 /* the parts of a compound word, relative to the word */
#define BM25_COMPOUND_PART_MIN 3 /* letters of each part of a compound */
#define BM25_PLURAL_ITEM 0.5     /* an item's GET, for a request to read things (plural) */
#define BM25_NAMED_GROUP 0.5     /* a thing's group, for a word the tools are named with */
#define BM25_DERIVED_WEIGHT 0.5  /* the verb a noun derives from (subscription -> subscribe) */
#define BM25_DENOMINAL_WEIGHT 1.0 /* the create group for a request that starts with a noun */
#define BM25_ABBREV_MIN 4         /* letters of a word that may be short for a longer one */
#define BM25_ABBREV_MAX 3         /* longer words it may be short for */
#define BM25_NAME_PRIOR 0.06      /* score / (1 + 0.06 x (words in the tool name - 1)) */
#define BM25_UNMATCHED 1.0        /* score / (1 + 0.05 x name words the request does not match) */
#define BM25_SCOPE 0.5            /* an unmatched name word after a preposition counts this much */
#define BM25_QUERY_WORDS 64       /* words of a query searched for; the rest is ignored */
#define BM25_INTENT_MISMATCH 0.3  /* a reading operation for a writing verb, or the reverse */
#define BM25_COVERAGE_EXP 2.0     /* score * (query words matched / query words)^2 */

#define BM25_FIELDS_MAX 4

struct posting {
    size_t term;
    double tf[BM25_FIELDS_MAX]; /* per field */
};

struct bm25_doc {
    const char *name;
    struct posting *terms; /* sorted by term */
    size_t nterms, cap;
    double len[BM25_FIELDS_MAX]; /* tokens per field */
    char kind;                   /* 'r' reads (GET), 'w' writes, 0 unknown */
    bool item;                   /* reads one item (a GET of a path that ends in a parameter) */
};

struct openapi_bm25 {
    json_t *vocab; /* term -> id */
    size_t *df;    /* per term id */
    size_t nvocab;
    struct bm25_doc *docs;
    size_t ndocs;
    size_t nfields;
    double weight[BM25_FIELDS_MAX]; /* of each field's score */
    double avgdl[BM25_FIELDS_MAX];
    bool expand;       /* the API vocabulary analyzer (openapi_bm25_new_fields) */
    json_t *words;     /* expand: every lower-cased word of the documents (compound parts) */
    json_t *stems;     /* expand: the stem of every word of the documents */
    json_t *groups;    /* expand: stem -> [group tokens] */
    json_t *qgroups;   /* expand: stem -> [group tokens] it implies in queries only */
    json_t *intent;    /* expand: stem of an action word -> "r" (reads) or "w" (writes) */
    json_t *things;    /* expand: the groups of things ("_issue", "_file") */
    json_t *named;     /* expand: the stem of every word of the tools' names */
    json_t *nounverbs; /* expand: stems of the verbs the nouns of the names derive from */
};

/*
 * English words that carry nothing about which operation is meant ("the", "please").
 * Only in the expanding analyzer; documents and queries alike.
 */
static const char *const stop_words[] = {
    "a",     "about", "am",    "an",    "and",    "any",   "are",   "aren",   "as",   "at",
    "be",    "been",  "but",   "by",    "can",    "could", "did",   "didn",   "do",   "does",
    "doesn", "don",   "for",   "from",  "has",    "have",  "he",    "her",    "here", "his",
    "how",   "i",     "if",    "in",    "into",   "is",    "isn",   "it",     "its",  "just",
    "ll",    "may",   "me",    "might", "mine",   "must",  "my",    "need",   "now",  "of",
    "on",    "onto",  "or",    "our",   "please", "re",    "she",   "should", "so",   "some",
    "than",  "that",  "the",   "their", "them",   "then",  "there", "these",  "they", "this",
    "those", "to",    "us",    "ve",    "via",    "want",  "was",   "we",     "were", "what",
    "when",  "where", "which", "will",  "with",   "won",   "would", "you",    "your",
};

/*
 * The built-in API vocabulary: groups of words that name the same action or the same kind of
 * thing in API documents and in what people ask (written for this gateway, not mined from any
 * particular API). The first word names the group; a word may be in several groups. Words are
 * stemmed like the text, so "removes" and "removing" are in the group of "remove".
 */
static const char *const word_groups[] = {
    /* actions that read ("=") */
    ("=get fetch retrieve read show view see display look inspect describe detail info "
     "information details check preview peek"),
    "=list all every enumerate browse show see view display read",
    "=search find lookup query filter locate seek discover match",
    "=download export",
    /* actions that write ("+") */
    ("+create add new make insert register build generate setup open initiate start begin "
     "launch leave save compose write draft establish provision instantiate"),
    ("+update edit change modify set patch alter adjust fix replace rename rewrite amend correct "
     "tweak configure customize customise"),
    /* a change of state is often done by an update of the thing (close an issue: its state);
       ">": in requests only (an operation named lock is no update of the issue) */
    ("+>update close archive mark complete finish resolve reopen lock unlock enable disable "
     "activate deactivate assign unassign reassign toggle turn rename"),
    "+delete remove erase destroy discard purge drop trash revoke unshare junk scrap wipe clear",
    /* a cancelled thing (a meeting, a subscription) is often deleted, in requests only */
    "+>delete cancel unsubscribe unfollow unwatch",
    "+send post publish deliver dispatch broadcast notify submit forward",
    "+cancel stop abort terminate end halt void",
    "+move transition progress advance transfer relocate shift reorder migrate",
    "+copy duplicate clone fork replicate",
    "+upload attach import",
    "+join enter",
    "+leave exit quit depart",
    "+restore unarchive undelete recover reopen untrash revert rollback undo unhide",
    "+close resolve finish complete done",
    "+approve accept",
    "+subscribe watch follow monitor notify",
    "+unsubscribe unwatch unfollow",
    "+pay charge bill purchase buy",
    "+refund reimburse",
    "+star favorite favourite bookmark like",
    "+schedule later scheduled",
    "+snooze mute silence pause quiet dnd disturb suspend",
    "+run start begin launch trigger execute resume play unpause continue",
    "+assign delegate allocate",
    "+merge combine",
    "+archive hide shelve",
    "+vote upvote",
    "+invite",
    /* things, and words that are both */
    "share grant permission permissions access collaborate collaborator",
    "myself current authenticated self login signin whoami",
    "bulk batch many multiple several",
    "message messages msg chat email mail",
    "channel conversation room",
    "user person people member someone somebody colleague teammate everyone who",
    "issue ticket bug incident",
    "repository repo",
    "file document doc spreadsheet",
    "comment reply note remark",
    "version revision",
    "history log changelog timeline",
    "balance money funds fund cash",
    "payment transaction",
    "customer client buyer",
    "link url permalink",
    "notification alert",
    "presence online offline availability",
    "label tag",
    "team workspace organization organisation org company",
    "secret credential password",
    "webhook hook callback",
    "reminder remind alarm",
    "storage quota space usage",
    "picture photo image avatar",
    "owner author creator",
    "folder directory",
    "task todo chore",
    "event meeting appointment calendar",
    "setting settings preference preferences option options configuration config",
};

static bool is_stop_word(const char *w)
{
    if (w[0] && !w[1]) /* a letter alone: the rest of a contraction or a possessive ('s, 'm, 't) */
        return true;
    size_t lo = 0, hi = sizeof(stop_words) / sizeof(*stop_words);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(stop_words[mid], w);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static bool is_vowel(char c)
{
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}

/*
 * A light English stemmer, enough for API vocabulary ("issues" and "issue", "created" and
 * "create", "listing" and "list", "repositories" and "repository" meet): plurals (-ies -> -y,
 * -sses -> -ss, -s but not -ss, -us, -is), then -ing and -ed when a syllable is left (a doubled
 * final consonant undone: mapped -> map), then a final -e. Words under four letters and words
 * with digits are left alone. Applied to documents and queries alike, so it only has to be
 * consistent, not linguistically right.
 */
/* Replaces the tail of w (length n) from `at` by `by` when it fits; the new length. */
static size_t respell(char *w, size_t n, size_t at, const char *by)
{
    size_t lb = strlen(by);
    if (at + lb > BM25_TOKEN_MAX)
        return n;
    memmove(w + at + lb, w + n, 1);
    memcpy(w + at, by, lb);
    return at + lb;
}

/*
 * British spellings as American ones, so that a request and a document in either meet: -our
 * (colour, favourite, behaviour), -ise and -isation (organise, customisation; words of seven
 * letters or more), -yse (analyse), -tre (centre), -logue (catalogue), each with its endings.
 */
static size_t americanize(char *w, size_t n)
{
    static const struct {
        const char *gb, *us;
        size_t min; /* letters of the word */
    } tails[] = {
        {"ourites", "orites", 9},     {"ourite", "orite", 8},
        {"ouring", "oring", 8},       {"oured", "ored", 7},
        {"ours", "ors", 6},           {"our", "or", 6},
        {"isations", "izations", 10}, {"isation", "ization", 9},
        {"ising", "izing", 9},        {"ised", "ized", 8},
        {"ises", "izes", 8},          {"ise", "ize", 7},
        {"ysing", "yzing", 7},        {"ysed", "yzed", 6},
        {"yses", "yzes", 6},          {"yse", "yze", 6},
        {"tres", "ters", 6},          {"tre", "ter", 5},
        {"logues", "logs", 8},        {"logue", "log", 7},
    };
    for (size_t i = 0; i < sizeof(tails) / sizeof(*tails); i++) {
        size_t lg = strlen(tails[i].gb);
        if (n >= tails[i].min && strcmp(w + n - lg, tails[i].gb) == 0)
            return respell(w, n, n - lg, tails[i].us);
    }
    return n;
}

static void stem(char *w)
{
    size_t n = strlen(w);
    for (size_t i = 0; i < n; i++)
        if (!isalpha((unsigned char)w[i]))
            return;
    if (n < 4)
        return;
    n = americanize(w, n);
    if (n > 4 && strcmp(w + n - 3, "ies") == 0) {
        strcpy(w + n - 3, "y");
        n -= 2;
    } else if (strcmp(w + n - 4, "sses") == 0) {
        w[n -= 2] = '\0';
    } else if (w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i') {
        w[--n] = '\0';
    }
    if (n > 4 && strcmp(w + n - 3, "ied") == 0) { /* notified -> notify, copied -> copy */
        strcpy(w + n - 3, "y");
        return;
    }
    size_t cut = 0;
    if (n > 5 && strcmp(w + n - 3, "ing") == 0)
        cut = 3;
    else if (n > 4 && strcmp(w + n - 2, "ed") == 0 && w[n - 3] != 'e')
        cut = 2;
    if (cut) {
        bool vowel = false; /* a syllable must be left */
        for (size_t i = 0; i < n - cut; i++)
            vowel |= is_vowel(w[i]);
        if (vowel) {
            w[n -= cut] = '\0';
            if (n >= 3 && w[n - 1] == w[n - 2] && !is_vowel(w[n - 1]) && w[n - 1] != 'l' &&
                w[n - 1] != 's' && w[n - 1] != 'z')
                w[--n] = '\0';
        }
    }
    if (n > 6 && strcmp(w + n - 2, "ee") == 0) /* assignee -> assign, employee -> employ */
        w[n -= 2] = '\0';
    if (n > 3 && w[n - 1] == 'e')
        w[--n] = '\0';
}

/*
 * The next word of *p into buf (NUL-terminated, lower-cased, not stemmed); false at the end of
 * the text. With `camel`, a lower-case letter followed by an upper-case one ends a word
 * (postMessage -> post, message).
 */
static bool next_word(const char **p, char *buf, bool camel)
{
    const unsigned char *s = (const unsigned char *)*p;
    while (*s && !(isascii(*s) && isalnum(*s)))
        s++;
    if (*s == '\0') {
        *p = (const char *)s;
        return false;
    }
    size_t n = 0;
    for (; *s && isascii(*s) && isalnum(*s); s++) {
        if (camel && n > 0 && isupper(*s) && islower(s[-1]))
            break;
        if (n < BM25_TOKEN_MAX)
            buf[n++] = (char)tolower(*s);
    }
    buf[n] = '\0';
    *p = (const char *)s;
    return true;
}

/* One term of a text, its weight, and the number of the (non-stop) word it came from. */
typedef int (*emit_fn)(void *ctx, const char *term, double weight, size_t word);

/* A word (stemmed) and, when expanding, its groups. */
static int emit_word(const struct openapi_bm25 *ix, const char *word, double w, size_t no,
                     bool query, emit_fn emit, void *ctx)
{
    char t[BM25_TOKEN_MAX + 1];
    snprintf(t, sizeof(t), "%s", word);
    stem(t);
    int err = emit(ctx, t, w, no);
    if (err || !ix->expand)
        return err;
    size_t i;
    json_t *g;
    /* in a query, a word the tools are named with is the document's own thing: its group (a
       calendar is an event) counts less */
    bool named = query && json_object_get(ix->named, t) != NULL;
    json_array_foreach(json_object_get(ix->groups, t), i, g)
    {
        double gw = named && json_object_get(ix->things, json_string_value(g)) ? BM25_NAMED_GROUP
                                                                               : BM25_GROUP_WEIGHT;
        if ((err = emit(ctx, json_string_value(g), w * gw, no)) != 0)
            return err;
    }
    json_array_foreach(query ? json_object_get(ix->qgroups, t) : NULL, i, g)
    {
        if ((err = emit(ctx, json_string_value(g), w * BM25_GROUP_WEIGHT, no)) != 0)
            return err;
    }
    return 0;
}

/* Particles that make a phrasal verb with the word before them (look up, set up, log in). */
static bool is_particle(const char *w)
{
    return strcmp(w, "up") == 0 || strcmp(w, "in") == 0 || strcmp(w, "out") == 0 ||
           strcmp(w, "on") == 0 || strcmp(w, "off") == 0;
}

/* Prepositions, which in a tool's name introduce its scope (create_for_authenticated_user). */
static bool is_preposition(const char *w)
{
    static const char *const preps[] = {"at", "by", "for", "from",  "in",   "into",
                                        "of", "on", "to",  "under", "with", "within"};
    for (size_t i = 0; i < sizeof(preps) / sizeof(*preps); i++)
        if (strcmp(w, preps[i]) == 0)
            return true;
    return false;
}

/*
 * The phrasal verb that `word` makes with the particle after it (look up -> lookup, set up ->
 * setup, logged in -> login, check out -> checkout) into `joined`, when it is a word of the
 * documents or of the vocabulary; *p then moves past the particle.
 */
static bool phrasal(const struct openapi_bm25 *ix, const char *word, const char **p, char *joined)
{
    char next[BM25_TOKEN_MAX + 1], st[BM25_TOKEN_MAX + 1];
    const char *q = *p;
    if (!next_word(&q, next, true) || !is_particle(next))
        return false;
    snprintf(st, sizeof(st), "%s", word);
    stem(st);
    size_t ls = strlen(st), ln = strlen(next);
    if (ls + ln > BM25_TOKEN_MAX)
        return false;
    memcpy(joined, st, ls);
    memcpy(joined + ls, next, ln + 1);
    char js[BM25_TOKEN_MAX + 1];
    snprintf(js, sizeof(js), "%s", joined);
    stem(js);
    if (!json_object_get(ix->words, joined) && !json_object_get(ix->groups, js))
        return false;
    *p = q;
    return true;
}

/*
 * "stop sharing", "stop following": the verb's undoing (unshare, unfollow) into `undo`, when it
 * is a word of the documents or of the vocabulary, in the place of "stop" (the verb stays: what
 * is undone, the sharing, is still what the request is about).
 */
static bool stop_doing(const struct openapi_bm25 *ix, const char *word, const char **p, char *undo)
{
    char next[BM25_TOKEN_MAX + 1];
    const char *q = *p;
    size_t n;
    if ((strcmp(word, "stop") != 0 && strcmp(word, "quit") != 0 && strcmp(word, "cease") != 0) ||
        !next_word(&q, next, true) || (n = strlen(next)) < 6 || strcmp(next + n - 3, "ing") != 0)
        return false;
    stem(next);
    if (strlen(next) + 2 > BM25_TOKEN_MAX)
        return false;
    snprintf(undo, BM25_TOKEN_MAX + 1, "un%s", next);
    return json_object_get(ix->stems, undo) || json_object_get(ix->groups, undo);
}

/* The document words that `word` is short for, when they have at most BM25_ABBREV_MAX stems. */
static int abbreviation(const struct openapi_bm25 *ix, const char *word, double w, size_t no,
                        emit_fn emit, void *ctx)
{
    char full[BM25_ABBREV_MAX][BM25_TOKEN_MAX + 1];
    const char *k;
    size_t nfull = 0, n = strlen(word);
    json_t *v;
    json_object_foreach(ix->words, k, v)
    {
        if (strlen(k) < n + 2 || strncmp(k, word, n) != 0)
            continue;
        char st[BM25_TOKEN_MAX + 1];
        snprintf(st, sizeof(st), "%s", k);
        stem(st);
        bool have = false;
        for (size_t i = 0; i < nfull; i++)
            have |= strcmp(full[i], st) == 0;
        if (have)
            continue;
        if (nfull == BM25_ABBREV_MAX)
            return 0; /* short for too many things: for none */
        memcpy(full[nfull++], st, sizeof(st));
    }
    int err = 0;
    for (size_t i = 0; i < nfull && err == 0; i++)
        err = emit_word(ix, full[i], w, no, true, emit, ctx);
    return err;
}

/*
 * The verbs an English noun derives from, by its suffix (subscription -> subscribe, invitation
 * -> invite, notification -> notify, permission -> permit, resolution -> resolve, addition ->
 * add, payment -> pay, removal -> remove): into cand (unstemmed), their number. Only candidates
 * that are a stem of the documents or of the vocabulary count (derived_verbs()), so a wrong
 * guess (option -> obe) matches nothing.
 */
static size_t derive_verbs(const char *w, char cand[][BM25_TOKEN_MAX + 1], size_t max)
{
    static const struct {
        const char *suffix, *repl;
        size_t min; /* letters of the word */
    } rules[] = {
        {"ication", "y", 9}, {"ation", "", 8},   {"ation", "e", 8}, {"ption", "be", 9},
        {"ssion", "t", 8},   {"ution", "ve", 8}, {"ition", "", 8},  {"ition", "e", 8},
        {"ment", "", 7},     {"val", "ve", 7},   {"wal", "w", 7},   {"sal", "se", 7},
    };
    size_t n = strlen(w), k = 0;
    for (size_t i = 0; i < sizeof(rules) / sizeof(*rules) && k < max; i++) {
        size_t ls = strlen(rules[i].suffix);
        if (n < rules[i].min || strcmp(w + n - ls, rules[i].suffix) != 0)
            continue;
        snprintf(cand[k++], BM25_TOKEN_MAX + 1, "%.*s%s", (int)(n - ls), w, rules[i].repl);
    }
    return k;
}

/* The verbs `word` (a noun, unstemmed, singular) derives from that the documents or the
   vocabulary have, each as its word (stemmed by emit_word) at half weight. */
static int derived_verbs(const struct openapi_bm25 *ix, const char *word, double w, size_t no,
                         bool query, emit_fn emit, void *ctx)
{
    char cand[8][BM25_TOKEN_MAX + 1], own[BM25_TOKEN_MAX + 1];
    snprintf(own, sizeof(own), "%s", word);
    stem(own);
    size_t k = derive_verbs(own, cand, 8);
    int err = 0;
    for (size_t i = 0; i < k && err == 0; i++) {
        char st[BM25_TOKEN_MAX + 1];
        snprintf(st, sizeof(st), "%s", cand[i]);
        stem(st);
        bool dup = strcmp(st, own) == 0;
        for (size_t j = 0; j < i && !dup; j++) {
            char o[BM25_TOKEN_MAX + 1];
            snprintf(o, sizeof(o), "%s", cand[j]);
            stem(o);
            dup = strcmp(o, st) == 0;
        }
        if (!dup && strlen(st) >= 3 &&
            (json_object_get(ix->stems, st) || json_object_get(ix->groups, st)))
            err = emit_word(ix, cand[i], w, no, query, emit, ctx);
    }
    return err;
}

/*
 * The terms of `text` with their weights: each word, and when expanding no stop words, the
 * groups of each word, a phrasal verb as one word (phrasal()), and the two parts of a word that
 * is two words of the documents run together (the longest first part wins).
 */
static int analyze(const struct openapi_bm25 *ix, const char *text, double w, bool query,
                   emit_fn emit, void *ctx)
{
    char word[BM25_TOKEN_MAX + 1], joined[BM25_TOKEN_MAX + 1];
    const char *p = text ? text : "";
    int err = 0;
    size_t no = 0;
    while (err == 0 && next_word(&p, word, ix->expand)) {
        if (ix->expand && (phrasal(ix, word, &p, joined) || stop_doing(ix, word, &p, joined)))
            snprintf(word, sizeof(word), "%s", joined);
        else if (ix->expand && is_stop_word(word))
            continue;
        if ((err = emit_word(ix, word, w, no++, query, emit, ctx)) != 0 || !ix->expand)
            continue;
        size_t n = strlen(word);
        /* an agent noun also counts as its verb when the document has it (watcher -> watch) */
        size_t er = n > 6 && strcmp(word + n - 3, "ers") == 0  ? 3
                    : n > 5 && strcmp(word + n - 2, "er") == 0 ? 2
                                                               : 0;
        if (er) {
            char base[BM25_TOKEN_MAX + 1];
            snprintf(base, sizeof(base), "%.*s", (int)(n - er), word);
            if (json_object_get(ix->words, base) &&
                (err = emit_word(ix, base, w * BM25_COMPOUND_WEIGHT, no - 1, query, emit, ctx)) !=
                    0)
                break;
        }
        /* and a noun in -ion its verb's stem (reaction -> react, creation -> creat) */
        size_t ion = n >= 9 && strcmp(word + n - 4, "ions") == 0  ? 4
                     : n >= 8 && strcmp(word + n - 3, "ion") == 0 ? 3
                                                                  : 0;
        if (ion) {
            char base[BM25_TOKEN_MAX + 1];
            snprintf(base, sizeof(base), "%.*s", (int)(n - ion), word);
            if ((err = emit_word(ix, base, w * BM25_COMPOUND_WEIGHT, no - 1, query, emit, ctx)) !=
                0)
                break;
        }
        /* and a noun its verb by its suffix (subscription -> subscribe, payment -> pay) */
        if ((err = derived_verbs(ix, word, w * BM25_DERIVED_WEIGHT, no - 1, query, emit, ctx)) != 0)
            break;
        /* in a query, a word the documents do not have that begins a few of their words is
           short for them (promo -> promotion, repo -> repository, config -> configuration) */
        if (query && n >= BM25_ABBREV_MIN && !json_object_get(ix->words, word) &&
            (err = abbreviation(ix, word, w * BM25_COMPOUND_WEIGHT, no - 1, emit, ctx)) != 0)
            break;
        for (size_t cut = n - BM25_COMPOUND_PART_MIN;
             n >= 2 * BM25_COMPOUND_PART_MIN && cut >= BM25_COMPOUND_PART_MIN; cut--) {
            char left[BM25_TOKEN_MAX + 1];
            snprintf(left, sizeof(left), "%.*s", (int)cut, word);
            if (json_object_get(ix->words, left) && json_object_get(ix->words, word + cut) &&
                !is_stop_word(left) && !is_stop_word(word + cut)) {
                if ((err = emit_word(ix, left, w * BM25_COMPOUND_WEIGHT, no - 1, query, emit,
                                     ctx)) == 0)
                    err = emit_word(ix, word + cut, w * BM25_COMPOUND_WEIGHT, no - 1, query, emit,
                                    ctx);
                break;
            }
        }
    }
    return err;
}

static int posting_cmp(const void *a, const void *b)
{
    const struct posting *x = a, *y = b;
    return x->term < y->term ? -1 : x->term > y->term;
}

struct index_ctx {
    struct openapi_bm25 *ix;
    struct bm25_doc *d;
    size_t field;
};

static int index_term(void *ctx, const char *tok, double w, size_t word)
{
    (void)word;
    struct openapi_bm25 *ix = ((struct index_ctx *)ctx)->ix;
    struct bm25_doc *d = ((struct index_ctx *)ctx)->d;
    size_t f = ((struct index_ctx *)ctx)->field;
    d->len[f] += w;
    json_t *id = json_object_get(ix->vocab, tok);
    size_t term;
    if (id) {
        term = (size_t)json_integer_value(id);
    } else {
        term = ix->nvocab;
        if (json_object_set_new(ix->vocab, tok, json_integer((json_int_t)term)) != 0)
            return ERR_NOMEM;
        size_t *df = realloc(ix->df, (term + 1) * sizeof(*df));
        if (df == NULL)
            return ERR_NOMEM;
        ix->df = df;
        ix->df[term] = 0;
        ix->nvocab++;
    }
    for (size_t i = 0; i < d->nterms; i++)
        if (d->terms[i].term == term) {
            d->terms[i].tf[f] += w;
            return 0;
        }
    if (d->nterms == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct posting *t = realloc(d->terms, cap * sizeof(*t));
        if (t == NULL)
            return ERR_NOMEM;
        d->terms = t;
        d->cap = cap;
    }
    d->terms[d->nterms] = (struct posting){.term = term};
    d->terms[d->nterms++].tf[f] = w;
    ix->df[term]++;
    return 0;
}

static int collect_word(void *ctx, const char *word)
{
    json_t *words = ctx;
    return json_object_get(words, word) || json_object_set_new(words, word, json_true()) == 0
               ? 0
               : ERR_NOMEM;
}

/* The word groups, keyed by stem: stem -> ["_" + first word of each group it is in]. */
static int build_groups(struct openapi_bm25 *ix)
{
    if ((ix->groups = json_object()) == NULL || (ix->qgroups = json_object()) == NULL ||
        (ix->intent = json_object()) == NULL || (ix->things = json_object()) == NULL)
        return ERR_NOMEM;
    for (size_t g = 0; g < sizeof(word_groups) / sizeof(*word_groups); g++) {
        char name[BM25_TOKEN_MAX + 2] = "_", word[BM25_TOKEN_MAX + 1];
        const char *p = word_groups[g];
        const char *kind = *p == '=' ? "r" : *p == '+' ? "w" : NULL;
        bool query_only = p[0] && p[1] == '>';
        bool first = true;
        while (next_word(&p, word, false)) {
            bool naming = first;
            if (first)
                snprintf(name + 1, sizeof(name) - 1, "%s", word);
            first = false;
            if (naming && query_only)
                continue; /* it is in its own group elsewhere */
            stem(word);
            if (kind) { /* a word of both kinds (read, a list or a get) has none */
                const char *had = json_string_value(json_object_get(ix->intent, word));
                if (json_object_set_new(ix->intent, word,
                                        json_string(had && strcmp(had, kind) ? "?" : kind)) != 0)
                    return ERR_NOMEM;
            }
            if (!kind && json_object_set_new(ix->things, name, json_true()) != 0)
                return ERR_NOMEM;
            json_t *groups = query_only ? ix->qgroups : ix->groups;
            json_t *a = json_object_get(groups, word);
            if (a == NULL &&
                (json_object_set_new(groups, word, a = json_array()) != 0 || a == NULL))
                return ERR_NOMEM;
            size_t i;
            json_t *v;
            bool have = false;
            json_array_foreach(a, i, v)
            {
                have |= strcmp(json_string_value(v), name) == 0;
            }
            if (!have && json_array_append_new(a, json_string(name)) != 0)
                return ERR_NOMEM;
        }
    }
    return 0;
}

static int build(const char *const *names, const char *const *texts, size_t nfields,
                 const double *weights, const bool *reads, size_t n, bool expand,
                 struct openapi_bm25 **out)
{
    if (nfields == 0 || nfields > BM25_FIELDS_MAX)
        return ERR_INVAL;
    int err = ERR_NOMEM;
    struct openapi_bm25 *ix = calloc(1, sizeof(*ix));
    if (ix == NULL || (ix->vocab = json_object()) == NULL)
        goto out;
    ix->expand = expand;
    ix->nfields = nfields;
    for (size_t f = 0; f < nfields; f++)
        ix->weight[f] = weights ? weights[f] : 1.0;
    if (expand) {
        /* every word of the documents first, for the parts of compound words */
        if ((ix->words = json_object()) == NULL || (err = build_groups(ix)) != 0)
            goto out;
        for (size_t i = 0; i < n * nfields; i++) {
            const char *p = texts[i] ? texts[i] : "";
            char word[BM25_TOKEN_MAX + 1];
            while (next_word(&p, word, true))
                if (strlen(word) >= BM25_COMPOUND_PART_MIN &&
                    (err = collect_word(ix->words, word)) != 0)
                    goto out;
        }
        err = ERR_NOMEM;
        if ((ix->stems = json_object()) == NULL || (ix->named = json_object()) == NULL)
            goto out;
        for (size_t i = 0; i < n; i++) {
            const char *p = names[i] ? names[i] : "";
            char word[BM25_TOKEN_MAX + 1];
            while (next_word(&p, word, true)) {
                stem(word);
                if (collect_word(ix->named, word) != 0)
                    goto out;
            }
        }
        const char *k;
        json_t *v;
        json_object_foreach(ix->words, k, v)
        {
            char st[BM25_TOKEN_MAX + 1];
            snprintf(st, sizeof(st), "%s", k);
            stem(st);
            if (collect_word(ix->stems, st) != 0)
                goto out;
        }
        /* the verbs the names' nouns derive from: subscribing is adding a subscription */
        if ((ix->nounverbs = json_object()) == NULL)
            goto out;
        json_object_foreach(ix->named, k, v)
        {
            char cand[8][BM25_TOKEN_MAX + 1];
            size_t nc = derive_verbs(k, cand, 8);
            for (size_t c = 0; c < nc; c++) {
                stem(cand[c]);
                if (strlen(cand[c]) >= 3 && strcmp(cand[c], k) != 0 &&
                    (json_object_get(ix->stems, cand[c]) || json_object_get(ix->groups, cand[c])) &&
                    collect_word(ix->nounverbs, cand[c]) != 0)
                    goto out;
            }
        }
    }
    if (n && (ix->docs = calloc(n, sizeof(*ix->docs))) == NULL)
        goto out;
    ix->ndocs = n;
    double total[BM25_FIELDS_MAX] = {0};
    for (size_t i = 0; i < n; i++) {
        ix->docs[i].name = names[i];
        ix->docs[i].kind = reads ? (reads[i] ? 'r' : 'w') : 0;
        for (size_t f = 0; f < nfields; f++) {
            struct index_ctx ctx = {ix, &ix->docs[i], f};
            if ((err = analyze(ix, texts[i * nfields + f], 1.0, false, index_term, &ctx)) != 0)
                goto out;
            total[f] += ix->docs[i].len[f];
        }
        if (ix->docs[i].nterms > 1)
            qsort(ix->docs[i].terms, ix->docs[i].nterms, sizeof(*ix->docs[i].terms), posting_cmp);
    }
    for (size_t f = 0; f < nfields; f++)
        ix->avgdl[f] = n ? total[f] / (double)n : 0;
    err = 0;
out:
    if (err) {
        openapi_bm25_free(ix);
        return err;
    }
    *out = ix;
    return 0;
}

int openapi_bm25_new(const char *const *names, const char *const *texts, size_t n,
                     struct openapi_bm25 **out)
{
    return build(names, texts, 1, NULL, NULL, n, false, out);
}

int openapi_bm25_new_fields(const char *const *names, const char *const *texts, size_t nfields,
                            const double *weights, const bool *reads, size_t n,
                            struct openapi_bm25 **out)
{
    return build(names, texts, nfields, weights, reads, n, true, out);
}

void openapi_bm25_free(struct openapi_bm25 *ix)
{
    if (ix == NULL)
        return;
    for (size_t i = 0; i < ix->ndocs; i++)
        free(ix->docs[i].terms);
    free(ix->docs);
    free(ix->df);
    json_decref(ix->vocab);
    json_decref(ix->words);
    json_decref(ix->stems);
    json_decref(ix->things);
    json_decref(ix->named);
    json_decref(ix->nounverbs);
    json_decref(ix->groups);
    json_decref(ix->qgroups);
    json_decref(ix->intent);
    free(ix);
}

static const struct posting *doc_term(const struct bm25_doc *d, size_t term)
{
    size_t lo = 0, hi = d->nterms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->terms[mid].term < term)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->nterms && d->terms[lo].term == term ? &d->terms[lo] : NULL;
}

struct hit {
    size_t doc;
    double score;
    const char *name;
};

static int hit_cmp(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

static int query_term(void *ctx, const char *tok, double w, size_t word);

/* The first term of the query's first word: its own stem (emit_word emits it first). */
static int first_term(void *ctx, const char *tok, double w, size_t word)
{
    (void)w;
    char *first = ctx;
    if (word == 0 && first[0] == '\0')
        snprintf(first, BM25_TOKEN_MAX + 1, "%s", tok);
    return 0;
}

/*
 * What the query asks for, from its first word, the verb of a request ("cancel a
 * subscription", "show my notifications") or a question word ("who is in this channel"): 'r' to
 * read, 'w' to write, 'c' when it starts with a word of the documents that is no action (a noun
 * used as a verb: "comment on the ticket", "tag the task" add one), 0 when it does not say.
 */
static char query_intent(const struct openapi_bm25 *ix, const char *query)
{
    static const char *const questions[] = {"who", "what", "which", "how",  "is",
                                            "are", "when", "where", "whose"};
    char first[BM25_TOKEN_MAX + 1] = "";
    const char *p = query;
    if (next_word(&p, first, false)) /* a question asks to read */
        for (size_t i = 0; i < sizeof(questions) / sizeof(*questions); i++)
            if (strcmp(first, questions[i]) == 0)
                return 'r';
    first[0] = '\0';
    if (analyze(ix, query, 1.0, true, first_term, first) != 0)
        return 0;
    /* a verb whose noun names tools asks to add one: subscribe (subscriptions_insert) */
    if (json_object_get(ix->nounverbs, first))
        return 'c';
    const char *k = json_string_value(json_object_get(ix->intent, first));
    char word[BM25_TOKEN_MAX + 1];
    for (p = query; k == NULL && next_word(&p, word, false);) {
        if (is_stop_word(word))
            continue;
        /* a request that starts with a thing: "comment on the ticket" adds one */
        stem(word); /* reply, when the documents say replies */
        if (!json_object_get(ix->stems, word))
            return 0;
        /* ... but a message used as a verb sends one: "email the invoice", "message Ana" */
        size_t i;
        json_t *g;
        json_array_foreach(json_object_get(ix->groups, word), i, g)
        {
            if (strcmp(json_string_value(g), "_message") == 0)
                return 'm';
        }
        return 'c';
    }
    return k && (k[0] == 'r' || k[0] == 'w') ? k[0] : 0;
}

/*
 * Coordination: a document that matches more of the query's words (by the word, a part of it or
 * its group) is what was asked for more than one that matches one word many times. Each score
 * is multiplied by (matched words / words)^2, the words being the query's words that are not
 * stop words and occur in some document.
 */
/* The terms of each query word: words[no] is an object term -> weight. */
static int word_term(void *ctx, const char *tok, double w, size_t word)
{
    json_t *words = ctx;
    while (json_array_size(words) <= word)
        if (json_array_append_new(words, json_object()) != 0)
            return ERR_NOMEM;
    return query_term(json_array_get(words, word), tok, w, word);
}

static int coverage(const struct openapi_bm25 *ix, const char *query, double *acc)
{
    json_t *words = json_array();
    unsigned *matched = calloc(ix->ndocs, sizeof(*matched));
    unsigned nwords = 0;
    if (matched == NULL || words == NULL || analyze(ix, query, 1.0, true, word_term, words) != 0) {
        json_decref(words);
        free(matched);
        return ERR_NOMEM;
    }
    size_t k;
    json_t *terms;
    json_array_foreach(words, k, terms)
    {
        bool known = false;
        for (size_t i = 0; i < ix->ndocs; i++) {
            const char *tok;
            json_t *v;
            json_object_foreach(terms, tok, v)
            {
                json_t *id = json_object_get(ix->vocab, tok);
                if (id && doc_term(&ix->docs[i], (size_t)json_integer_value(id))) {
                    matched[i]++;
                    known = true;
                    break;
                }
            }
        }
        nwords += known;
    }
    for (size_t i = 0; nwords && i < ix->ndocs; i++)
        acc[i] *= pow((double)matched[i] / (double)nwords, BM25_COVERAGE_EXP);
    json_decref(words);
    free(matched);
    return 0;
}

static int query_term(void *ctx, const char *tok, double w, size_t word)
{
    (void)word;
    json_t *seen = ctx, *had = json_object_get(seen, tok);
    if (had && json_real_value(had) >= w)
        return 0;
    return json_object_set_new(seen, tok, json_real(w)) == 0 ? 0 : ERR_NOMEM;
}

/* Words after which a request gives a name or a text, not what to do ("a list called Blocked"). */
static bool names_next(const char *w, size_t n)
{
    static const char *const markers[] = {"called", "named", "titled", "entitled"};
    for (size_t i = 0; i < sizeof(markers) / sizeof(*markers); i++)
        if (strlen(markers[i]) == n && strncasecmp(w, markers[i], n) == 0)
            return true;
    return false;
}

/* Words after which the rest of a request is the text to send ("... saying the deploy is done"). */
static bool text_follows(const char *w, size_t n)
{
    static const char *const markers[] = {"saying", "says", "reading", "stating"};
    for (size_t i = 0; i < sizeof(markers) / sizeof(*markers); i++)
        if (strlen(markers[i]) == n && strncasecmp(w, markers[i], n) == 0)
            return true;
    return false;
}

/*
 * The query without the values it carries, which name a thing to act on, not the operation, and
 * would only match examples in the documents: a word with a digit (PROJ-123, 9am, v2.0), an
 * address or a handle (ana@example.com, #general, @bob, https://...), quoted text, the name after
 * "called" or "named" (one word, or a run of capitalised ones: "a playlist called Road Trip"), and
 * the text after "saying".
 */
static char *query_words(const char *query)
{
    char *q = oa_strdup(query);
    size_t words = 0;
    int name = 0; /* 1: a name comes next, 2: a capitalised name goes on */
    for (char *s = q; s && *s;) {
        if (*s == '"' || (*s == '\'' && (s == q || isspace((unsigned char)s[-1])))) {
            char *end = strchr(s + 1, *s); /* quoted text, up to its closing quote */
            if (end) {
                memset(s, ' ', (size_t)(end - s + 1));
                s = end + 1;
                continue;
            }
        }
        size_t n = strcspn(s, " \t\r\n");
        bool value = n && (s[0] == '#' || s[0] == '@');
        for (size_t i = 0; i < n; i++)
            value |= isdigit((unsigned char)s[i]) || s[i] == '@' || s[i] == '/';
        if (name && n) { /* a name is one word, or goes on while it is capitalised */
            bool cap = isupper((unsigned char)s[0]);
            value = name == 1 || cap;
            name = value && cap && s[n - 1] != ',' && s[n - 1] != '.' ? 2 : 0;
        }
        if (n && text_follows(s, n)) {
            *s = '\0';
            break;
        }
        if (n && names_next(s, n)) {
            memset(s, ' ', n);
            name = 1;
        } else if (value) {
            memset(s, ' ', n);
        }
        if (n && ++words > BM25_QUERY_WORDS) { /* a request is a sentence, not a document */
            *s = '\0';
            break;
        }
        s += n ? n : 1;
    }
    return q;
}

void openapi_bm25_set_items(struct openapi_bm25 *ix, const bool *item)
{
    for (size_t i = 0; ix && item && i < ix->ndocs; i++)
        ix->docs[i].item = item[i];
}

/*
 * Does the request name things in the plural ("show my meetings", "read the comments"): a word
 * after the first, not an action, that the stemmer makes singular and whose singular the
 * documents have.
 */
static bool query_plural(const struct openapi_bm25 *ix, const char *query)
{
    char word[BM25_TOKEN_MAX + 1], st[BM25_TOKEN_MAX + 1];
    const char *p = query;
    bool first = true;
    if (next_word(&p, word, false) && strcmp(word, "who") == 0)
        return true; /* who: the people, a list */
    p = query;
    while (next_word(&p, word, false)) {
        size_t n = strlen(word);
        if (is_stop_word(word))
            continue;
        bool skip = first;
        first = false;
        if (skip || n < 4 || word[n - 1] != 's' || word[n - 2] == 's' || word[n - 2] == 'u' ||
            word[n - 2] == 'i')
            continue;
        snprintf(st, sizeof(st), "%s", word);
        stem(st);
        if (json_object_get(ix->intent, st) || !json_object_get(ix->stems, st))
            continue;
        return true;
    }
    return false;
}

/*
 * A request's preamble, a verb of wanting or trying before "to" after nothing but stop words ("I'd
 * like to delete a file", "I'm trying to find ..."), blanked: the verb that follows is the one
 * asked for, and "like" would read as the star group.
 */
static void drop_preamble(char *q)
{
    static const char *const verbs[] = {"like",   "love",   "wish",    "hope",    "hoping",
                                        "try",    "trying", "going",   "plan",    "planning",
                                        "wanted", "needed", "wanting", "supposed"};
    char *s = q;
    while (*s) {
        while (*s && !isalnum((unsigned char)*s))
            s++;
        char *w = s;
        while (isalnum((unsigned char)*s))
            s++;
        size_t n = (size_t)(s - w);
        if (n == 0 || n > BM25_TOKEN_MAX)
            return;
        char word[BM25_TOKEN_MAX + 1];
        for (size_t i = 0; i < n; i++)
            word[i] = (char)tolower((unsigned char)w[i]);
        word[n] = '\0';
        bool pre = false;
        for (size_t i = 0; i < sizeof(verbs) / sizeof(*verbs); i++)
            pre |= strcmp(word, verbs[i]) == 0;
        char *t = s;
        while (*t && isspace((unsigned char)*t))
            t++;
        if (pre && strncasecmp(t, "to", 2) == 0 && !isalnum((unsigned char)t[2])) {
            memset(w, ' ', (size_t)(t + 2 - w));
            return;
        }
        /* a passive: "get notified", "be added": the participle is the verb */
        size_t lp = 0;
        while (isalpha((unsigned char)t[lp]))
            lp++;
        if ((strcmp(word, "get") == 0 || strcmp(word, "be") == 0) && lp >= 5 &&
            strncasecmp(t + lp - 2, "ed", 2) == 0) {
            memset(w, ' ', n);
            return;
        }
        if (!is_stop_word(word))
            return;
    }
}

size_t openapi_bm25_rank(const struct openapi_bm25 *ix, const char *text, size_t max, size_t *out,
                         double *scores)
{
    if (ix == NULL || ix->ndocs == 0 || max == 0 || text == NULL)
        return 0;
    double *acc = calloc(ix->ndocs, sizeof(*acc));
    json_t *seen = json_object();
    char *query = ix->expand ? query_words(text) : oa_strdup(text);
    size_t nhits = 0;
    struct hit *hits = NULL;
    if (acc == NULL || seen == NULL || query == NULL)
        goto out;
    if (ix->expand)
        drop_preamble(query);
    /* the query's terms, each once, with its highest weight */
    if (analyze(ix, query, 1.0, true, query_term, seen) != 0)
        goto out;
    char intent = ix->expand ? query_intent(ix, query) : 0;
    if (intent == 'c' || intent == 'm') { /* a noun used as a verb asks to add one, or send */
        if (query_term(seen, intent == 'm' ? "_send" : "_create", BM25_DENOMINAL_WEIGHT, 0) != 0)
            goto out;
        intent = 'w';
    }
    double N = (double)ix->ndocs;
    const char *tok;
    json_t *qw;
    json_object_foreach(seen, tok, qw)
    {
        json_t *id = json_object_get(ix->vocab, tok);
        if (id == NULL)
            continue; /* unknown terms score nothing */
        size_t term = (size_t)json_integer_value(id);
        double df = (double)ix->df[term];
        double idf = log(1.0 + (N - df + 0.5) / (df + 0.5)) * json_real_value(qw);
        for (size_t i = 0; i < ix->ndocs; i++) {
            const struct posting *pt = doc_term(&ix->docs[i], term);
            for (size_t f = 0; pt && f < ix->nfields; f++) {
                double tf = pt->tf[f];
                if (tf <= 0)
                    continue;
                double norm = BM25_K1 * (1.0 - BM25_B + BM25_B * ix->docs[i].len[f] / ix->avgdl[f]);
                acc[i] += ix->weight[f] * idf * tf * (BM25_K1 + 1.0) / (tf + norm);
            }
        }
    }
    if (ix->expand && coverage(ix, query, acc) != 0)
        goto out;
    /* an operation of the other kind (a GET for "cancel ...", a POST for "list ...") last */
    for (size_t i = 0; intent && i < ix->ndocs; i++)
        if (ix->docs[i].kind && ix->docs[i].kind != intent)
            acc[i] *= BM25_INTENT_MISMATCH;
    /* a request to read things (plural) asks for a list, not one item */
    if (intent == 'r' && query_plural(ix, query))
        for (size_t i = 0; i < ix->ndocs; i++)
            if (ix->docs[i].item)
                acc[i] *= BM25_PLURAL_ITEM;
    /* the plainer operation first: a longer name is a more specific operation (check_if_merged
       against merge, a nested resource against the resource) */
    for (size_t i = 0; ix->expand && i < ix->ndocs; i++) {
        if (acc[i] <= 0)
            continue;
        size_t parts = 0;
        double unmatched = 0, scope = 1.0;
        const char *c = ix->docs[i].name;
        char part[BM25_TOKEN_MAX + 1];
        while (next_word(&c, part, true)) {
            parts++;
            if (is_stop_word(part)) { /* for, in, by: what follows is the scope (list_for_repo) */
                scope = is_preposition(part) ? BM25_SCOPE : scope;
                continue;
            }
            stem(part);
            bool hit = json_object_get(seen, part) != NULL;
            size_t k;
            json_t *g;
            json_array_foreach(json_object_get(ix->groups, part), k, g)
            {
                hit |= json_object_get(seen, json_string_value(g)) != NULL;
            }
            /* a noun of the name is matched by the verb it derives from (subscriptions) */
            char cand[8][BM25_TOKEN_MAX + 1];
            size_t nc = hit ? 0 : derive_verbs(part, cand, 8);
            for (size_t v = 0; v < nc && !hit; v++) {
                stem(cand[v]);
                hit = json_object_get(seen, cand[v]) != NULL;
            }
            unmatched += hit ? 0 : scope;
        }
        acc[i] /= (1.0 + BM25_NAME_PRIOR * (double)(parts ? parts - 1 : 0)) *
                  (1.0 + BM25_UNMATCHED * (double)unmatched);
    }
    for (size_t i = 0; i < ix->ndocs; i++)
        nhits += acc[i] > 0;
    if (nhits == 0 || (hits = malloc(nhits * sizeof(*hits))) == NULL) {
        nhits = 0;
        goto out;
    }
    nhits = 0;
    for (size_t i = 0; i < ix->ndocs; i++)
        if (acc[i] > 0)
            hits[nhits++] = (struct hit){i, acc[i], ix->docs[i].name};
    qsort(hits, nhits, sizeof(*hits), hit_cmp);
    if (nhits > max)
        nhits = max;
    for (size_t i = 0; i < nhits; i++) {
        out[i] = hits[i].doc;
        if (scores)
            scores[i] = hits[i].score;
    }
out:
    free(hits);
    free(acc);
    free(query);
    json_decref(seen);
    return nhits;
}
