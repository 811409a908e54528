#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image-pull.h"
#include "macro.h"
#include "oci-ref.h"

#define DOCKER_HUB_REGISTRY "docker.io"
#define DOCKER_HUB_API_HOST "registry-1.docker.io"

OciReference *oci_reference_free(OciReference *ref)
{
        if (!ref)
                return NULL;
        free(ref->registry);
        free(ref->repository);
        free(ref->tag);
        free(ref->digest);
        free(ref);
        return NULL;
}

static int reject(char **ret_error, const char *format, ...) __attribute__((format(printf, 2, 3)));

static int reject(char **ret_error, const char *format, ...)
{
        va_list ap;

        if (ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return -EINVAL;
}

bool oci_digest_is_valid(const char *digest)
{
        if (!digest || !strneq(digest, "sha256:", 7))
                return false;
        digest += 7;
        if (strlen(digest) != 64)
                return false;
        for (const char *p = digest; *p; p++)
                if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
                        return false;
        return true;
}

static bool is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* path-component: [a-z0-9]+ (separator [a-z0-9]+)*, separator: "." | "_" | "__" | "-"+ */
static bool path_component_is_valid(const char *s, size_t n)
{
        size_t i = 0;

        if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
                return false;
        while (i < n) {
                if (is_lower_alnum(s[i])) {
                        i++;
                        continue;
                }
                size_t start = i;
                if (s[i] == '.')
                        i++;
                else if (s[i] == '_')
                        i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
                else if (s[i] == '-')
                        while (i < n && s[i] == '-')
                                i++;
                else
                        return false;
                if (i == start || i >= n || !is_lower_alnum(s[i]))
                        return false;
        }
        return true;
}

/* host: dot-separated labels of [A-Za-z0-9-] not starting or ending with '-', or a bracketed
 * IPv6 address; optional ":port" of decimal digits. */
static bool registry_is_valid(const char *s)
{
        const char *colon, *end;

        if (s[0] == '[') {
                end = strchr(s, ']');
                if (!end || end == s + 1)
                        return false;
                for (const char *p = s + 1; p < end; p++)
                        if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                                return false;
                colon = end[1] == ':' ? end + 1 : NULL;
                if (!colon && end[1] != '\0')
                        return false;
        } else {
                colon = strchr(s, ':');
                end = colon ? colon : s + strlen(s);
                const char *label = s;
                for (const char *p = s;; p++) {
                        if (p == end || *p == '.') {
                                if (p == label || label[0] == '-' || p[-1] == '-')
                                        return false;
                                if (p == end)
                                        break;
                                label = p + 1;
                        } else if (!isalnum((unsigned char)*p) && *p != '-')
                                return false;
                }
        }

        if (colon) {
                size_t n = strlen(colon + 1);
                if (n == 0 || n > 5 || strspn(colon + 1, "0123456789") != n ||
                    atoi(colon + 1) > 65535)
                        return false;
        }
        return true;
}

static bool tag_is_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > OCI_TAG_MAX)
                return false;
        if (!isalnum((unsigned char)s[0]) && s[0] != '_')
                return false;
        for (size_t i = 1; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
                        return false;
        return true;
}

/* The first component names a registry when it contains '.' or ':' or is "localhost", the
 * rule Docker applies, so "library/busybox" stays on Docker Hub. */
static bool component_is_registry(const char *s, size_t n)
{
        return memchr(s, '.', n) || memchr(s, ':', n) || (n == 9 && strneq(s, "localhost", 9));
}

int oci_reference_parse(const char *s, OciReference **ret, char **ret_error)
{
        _cleanup_free_ char *copy = NULL, *registry = NULL, *repository = NULL, *tag = NULL,
                            *digest = NULL;
        char *name, *at, *slash, *colon;

        if (isempty(s))
                return reject(ret_error, "Image reference is empty: give a name such as 'busybox' "
                                         "or '127.0.0.1:5000/busybox:1'");
        if (strlen(s) > OCI_NAME_MAX + 1 + OCI_TAG_MAX + 1 + 71)
                return reject(ret_error, "Image reference '%.64s...' is too long", s);

        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        name = copy;

        at = strchr(name, '@');
        if (at) {
                *at = '\0';
                if (!oci_digest_is_valid(at + 1))
                        return reject(ret_error,
                                      "Image reference '%s' has an invalid digest '%s': expected "
                                      "'sha256:' and 64 lower-case hex digits",
                                      s, at + 1);
                digest = strdup(at + 1);
                if (!digest)
                        return -ENOMEM;
        }

        /* A tag follows the last ':' unless that colon is part of the registry's port. */
        slash = strrchr(name, '/');
        colon = strrchr(name, ':');
        if (colon && (!slash || colon > slash)) {
                *colon = '\0';
                if (!tag_is_valid(colon + 1))
                        return reject(ret_error,
                                      "Image reference '%s' has an invalid tag '%s': use up to %d "
                                      "letters, digits, '_', '.' or '-', not starting with '.' "
                                      "or '-'",
                                      s, colon + 1, OCI_TAG_MAX);
                tag = strdup(colon + 1);
                if (!tag)
                        return -ENOMEM;
        }

        slash = strchr(name, '/');
        if (slash && component_is_registry(name, slash - name)) {
                registry = strndup(name, slash - name);
                if (!registry)
                        return -ENOMEM;
                name = slash + 1;
                if (!registry_is_valid(registry))
                        return reject(ret_error,
                                      "Image reference '%s' has an invalid registry '%s': expected "
                                      "host[:port]",
                                      s, registry);
                if (streq(registry, "index.docker.io")) {
                        free(registry);
                        registry = strdup(DOCKER_HUB_REGISTRY);
                        if (!registry)
                                return -ENOMEM;
                }
        } else {
                registry = strdup(DOCKER_HUB_REGISTRY);
                if (!registry)
                        return -ENOMEM;
        }

        if (isempty(name))
                return reject(ret_error, "Image reference '%s' has no repository name", s);

        for (const char *p = name;;) {
                const char *e = strchr(p, '/');
                size_t n = e ? (size_t)(e - p) : strlen(p);

                if (!path_component_is_valid(p, n))
                        return reject(ret_error,
                                      "Image reference '%s' has an invalid repository name '%s': "
                                      "use lower-case letters, digits and single '.', '_', '__' "
                                      "or '-' separators between '/'-separated components",
                                      s, name);
                if (!e)
                        break;
                p = e + 1;
        }

        if (streq(registry, DOCKER_HUB_REGISTRY) && !strchr(name, '/')) {
                if (asprintf(&repository, "library/%s", name) < 0)
                        return -ENOMEM;
        } else {
                repository = strdup(name);
                if (!repository)
                        return -ENOMEM;
        }

        if (strlen(registry) + 1 + strlen(repository) > OCI_NAME_MAX)
                return reject(ret_error,
                              "Image reference '%.64s...' is invalid: the repository name with its "
                              "registry is longer than %d characters",
                              s, OCI_NAME_MAX);

        if (!tag && !digest) {
                tag = strdup("latest");
                if (!tag)
                        return -ENOMEM;
        }

        OciReference *ref = calloc(1, sizeof(*ref));
        if (!ref)
                return -ENOMEM;
        ref->registry = TAKE_PTR(registry);
        ref->repository = TAKE_PTR(repository);
        ref->tag = TAKE_PTR(tag);
        ref->digest = TAKE_PTR(digest);
        *ret = ref;
        return 0;
}

int oci_reference_to_string(const OciReference *ref, char **ret)
{
        char *s;

        if (asprintf(&s, "%s/%s%s%s%s%s", ref->registry, ref->repository, ref->tag ? ":" : "",
                     strempty(ref->tag), ref->digest ? "@" : "", strempty(ref->digest)) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

const char *oci_reference_api_host(const OciReference *ref)
{
        return streq(ref->registry, DOCKER_HUB_REGISTRY) ? DOCKER_HUB_API_HOST : ref->registry;
}

int oci_reference_normalize(const char *reference, char **ret)
{
        _cleanup_(oci_reference_freep) OciReference *ref = NULL;
        int r;

        r = oci_reference_parse(reference, &ref, NULL);
        if (r < 0)
                return r;

        return oci_reference_to_string(ref, ret);
}
