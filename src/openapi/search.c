/*
 * BM25 ranking for the search discovery mode: a small inverted-free index (one sorted term list
 * per document) over the curated operations, which number at most a few thousand, so a linear
 * scan per query term is fast enough and keeps the code obvious. Terms are interned in one
 * jansson object (term -> id); documents hold (id, frequency) pairs sorted by id.
 *
 * Scoring is textbook Okapi BM25 with the non-negative idf of Lucene:
 *   score(D, Q) = sum over distinct q in Q of idf(q) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |D|
 * / avgdl)) idf(q)      = ln(1 + (N - df + 0.5) / (df + 0.5))
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "openapi/openapi-int.h"

#define BM25_K1 1.2
#define BM25_B 0.75
#define BM25_TOKEN_MAX 64 /* longer runs are cut (still one token) */

struct posting {
    size_t term;
    unsigned tf;
};

struct bm25_doc {
    const char *name;
    struct posting *terms; /* sorted by term */
    size_t nterms;
    size_t len; /* tokens */
};

struct openapi_bm25 {
    json_t *vocab; /* term -> id */
    size_t *df;    /* per term id */
    size_t nvocab;
    struct bm25_doc *docs;
    size_t ndocs;
    double avgdl;
};

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
static void stem(char *w)
{
    size_t n = strlen(w);
    for (size_t i = 0; i < n; i++)
        if (!isalpha((unsigned char)w[i]))
            return;
    if (n < 4)
        return;
    if (n > 4 && strcmp(w + n - 3, "ies") == 0) {
        strcpy(w + n - 3, "y");
        n -= 2;
    } else if (strcmp(w + n - 4, "sses") == 0) {
        w[n -= 2] = '\0';
    } else if (w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i') {
        w[--n] = '\0';
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
    if (n > 3 && w[n - 1] == 'e')
        w[--n] = '\0';
}

/* The next token of *p into buf (NUL-terminated, stemmed); false at the end of the text. */
static bool next_token(const char **p, char *buf)
{
    const unsigned char *s = (const unsigned char *)*p;
    while (*s && !(isascii(*s) && isalnum(*s)))
        s++;
    if (*s == '\0') {
        *p = (const char *)s;
        return false;
    }
    size_t n = 0;
    for (; *s && isascii(*s) && isalnum(*s); s++)
        if (n < BM25_TOKEN_MAX)
            buf[n++] = (char)tolower(*s);
    buf[n] = '\0';
    stem(buf);
    *p = (const char *)s;
    return true;
}

static int posting_cmp(const void *a, const void *b)
{
    const struct posting *x = a, *y = b;
    return x->term < y->term ? -1 : x->term > y->term;
}

static int index_doc(struct openapi_bm25 *ix, struct bm25_doc *d, const char *text)
{
    char tok[BM25_TOKEN_MAX + 1];
    size_t cap = 0;
    const char *p = text ? text : "";
    while (next_token(&p, tok)) {
        d->len++;
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
        size_t i = 0;
        while (i < d->nterms && d->terms[i].term != term)
            i++;
        if (i < d->nterms) {
            d->terms[i].tf++;
            continue;
        }
        if (d->nterms == cap) {
            cap = cap ? cap * 2 : 16;
            struct posting *t = realloc(d->terms, cap * sizeof(*t));
            if (t == NULL)
                return ERR_NOMEM;
            d->terms = t;
        }
        d->terms[d->nterms++] = (struct posting){term, 1};
        ix->df[term]++;
    }
    if (d->nterms > 1)
        qsort(d->terms, d->nterms, sizeof(*d->terms), posting_cmp);
    return 0;
}

int openapi_bm25_new(const char *const *names, const char *const *texts, size_t n,
                     struct openapi_bm25 **out)
{
    int err = ERR_NOMEM;
    struct openapi_bm25 *ix = calloc(1, sizeof(*ix));
    if (ix == NULL || (ix->vocab = json_object()) == NULL)
        goto out;
    if (n && (ix->docs = calloc(n, sizeof(*ix->docs))) == NULL)
        goto out;
    ix->ndocs = n;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        ix->docs[i].name = names[i];
        if ((err = index_doc(ix, &ix->docs[i], texts[i])) != 0)
            goto out;
        total += ix->docs[i].len;
    }
    ix->avgdl = n ? (double)total / (double)n : 0;
    err = 0;
out:
    if (err) {
        openapi_bm25_free(ix);
        return err;
    }
    *out = ix;
    return 0;
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
    free(ix);
}

static unsigned doc_tf(const struct bm25_doc *d, size_t term)
{
    size_t lo = 0, hi = d->nterms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->terms[mid].term < term)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->nterms && d->terms[lo].term == term ? d->terms[lo].tf : 0;
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

size_t openapi_bm25_rank(const struct openapi_bm25 *ix, const char *query, size_t max, size_t *out,
                         double *scores)
{
    if (ix == NULL || ix->ndocs == 0 || max == 0 || query == NULL)
        return 0;
    double *acc = calloc(ix->ndocs, sizeof(*acc));
    json_t *seen = json_object();
    size_t nhits = 0;
    struct hit *hits = NULL;
    if (acc == NULL || seen == NULL)
        goto out;
    char tok[BM25_TOKEN_MAX + 1];
    const char *p = query;
    double N = (double)ix->ndocs;
    while (next_token(&p, tok)) {
        json_t *id = json_object_get(ix->vocab, tok);
        if (id == NULL || json_object_get(seen, tok))
            continue; /* unknown terms score nothing; repeats count once */
        json_object_set_new(seen, tok, json_true());
        size_t term = (size_t)json_integer_value(id);
        double df = (double)ix->df[term];
        double idf = log(1.0 + (N - df + 0.5) / (df + 0.5));
        for (size_t i = 0; i < ix->ndocs; i++) {
            unsigned tf = doc_tf(&ix->docs[i], term);
            if (tf == 0)
                continue;
            double norm = BM25_K1 * (1.0 - BM25_B + BM25_B * (double)ix->docs[i].len / ix->avgdl);
            acc[i] += idf * (double)tf * (BM25_K1 + 1.0) / ((double)tf + norm);
        }
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
    json_decref(seen);
    return nhits;
}
