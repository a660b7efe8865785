// SPDX-License-Identifier: MIT
// Mappings whose file changes underneath (base/mapping.h): a file truncated while mapped is
// read past its new end without the process dying (the handler swaps in zeros and marks the
// mapping damaged), an overwrite in place is seen by its times even when the size and the
// modification time stay, a file replaced by a rename or deleted is no change, and a SIGBUS
// outside every mapping still ends the process.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/mapping.h"
#include "util.h"

enum { PAGES = 4 };

// A file of PAGES pages, every byte 0x5a.
static const char *make_file(const char *name, size_t *size)
{
    *size = (size_t)sysconf(_SC_PAGESIZE) * PAGES;
    char *bytes = malloc(*size);
    assert_non_null(bytes);
    memset(bytes, 0x5a, *size);
    const char *path = test_temp_path(name);
    assert_int_equal(test_write_file(path, bytes, *size), 0);
    free(bytes);
    return path;
}

static void test_truncated_reads_zeros(void **state)
{
    (void)state;
    size_t size;
    const char *path = make_file("truncated.bin", &size);
    garlic_mapping m;
    garlic_error err = {0};
    assert_int_equal(garlic_mapping_open(&m, path, &err), GARLIC_OK);
    assert_int_equal(m.size, size);
    volatile const uint8_t *p = m.data;
    assert_int_equal(p[size - 1], 0x5a); // resident before the truncation
    assert_int_equal(garlic_mapping_check(&m, "truncated.bin", &err), GARLIC_OK);
    assert_int_equal(truncate(path, (off_t)(size / PAGES)), 0);
    // Past the new end: SIGBUS without the handler; with it, zeros (the whole mapping).
    assert_int_equal(p[size - 1], 0);
    assert_int_equal(p[0], 0);
    assert_true(garlic_mapping_damaged(&m));
    assert_int_equal(garlic_mapping_check(&m, "truncated.bin", &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "truncated.bin: the file was truncated"));
    garlic_mapping_close(&m);
    garlic_mapping_close(&m); // closed: a no-op

    // Truncated but not read past its end yet: the size tells.
    assert_int_equal(garlic_mapping_open(&m, path, &err), GARLIC_OK);
    assert_int_equal(truncate(path, 10), 0);
    assert_int_equal(garlic_mapping_check(&m, "t", &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "t: the file is 10 bytes now"));
    assert_false(garlic_mapping_damaged(&m));
    garlic_mapping_close(&m);
}

// Writes over the first bytes of path in place (same inode, same size).
static void overwrite(const char *path)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "garbage", 7, 0), 7);
    close(fd);
}

static void test_overwrite_in_place(void **state)
{
    (void)state;
    size_t size;
    const char *path = make_file("rewritten.bin", &size);
    struct stat before;
    assert_int_equal(stat(path, &before), 0);
    garlic_mapping m;
    garlic_error err = {0};
    assert_int_equal(garlic_mapping_open(&m, path, &err), GARLIC_OK);
    struct timespec pause = {0, 20 * 1000000L}; // past the file system's time granularity
    nanosleep(&pause, NULL);
    overwrite(path);
    assert_int_equal(m.data[0], 'g'); // a private mapping still shows the page cache
    assert_int_equal(garlic_mapping_check(&m, "rewritten.bin", &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "modification time"));
    // Even with the modification time put back (rsync --inplace does), the change shows.
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
    assert_int_equal(garlic_mapping_check(&m, "rewritten.bin", &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "status-change time"));
    garlic_mapping_close(&m);
}

static void test_rename_is_no_change(void **state)
{
    (void)state;
    size_t size;
    const char *path = make_file("renamed.bin", &size);
    char other[600];
    snprintf(other, sizeof other, "%s", make_file("other.bin", &size));
    garlic_mapping m;
    garlic_error err = {0};
    assert_int_equal(garlic_mapping_open(&m, path, &err), GARLIC_OK);
    struct timespec pause = {0, 20 * 1000000L};
    nanosleep(&pause, NULL);
    assert_int_equal(rename(other, path), 0); // a new file takes the path: ours is intact
    assert_int_equal(garlic_mapping_check(&m, "renamed.bin", &err), GARLIC_OK);
    assert_int_equal(m.data[size - 1], 0x5a);
    garlic_mapping_close(&m);
    assert_int_equal(garlic_mapping_open(&m, path, &err), GARLIC_OK);
    assert_int_equal(unlink(path), 0); // deleted: the mapping keeps it
    assert_int_equal(garlic_mapping_check(&m, "renamed.bin", &err), GARLIC_OK);
    garlic_mapping_close(&m);
}

static void test_open_errors(void **state)
{
    (void)state;
    garlic_mapping m;
    garlic_error err = {0};
    assert_int_equal(garlic_mapping_open(&m, test_temp_path("absent.bin"), &err), GARLIC_EIO);
    assert_non_null(strstr(err.message, "absent.bin: cannot open"));
    const char *empty = test_temp_path("empty.bin");
    assert_int_equal(test_write_file(empty, "", 0), 0);
    assert_int_equal(garlic_mapping_open(&m, empty, &err), GARLIC_EFORMAT);
    assert_non_null(strstr(err.message, "empty.bin: empty file"));
    garlic_mapping_close(&m); // left closed by the failure
}

// The child of test_foreign_sigbus_kills, in a fresh process (so that SIGBUS was not
// cmocka's before the handler came): maps a file, then takes a SIGBUS that is not a
// truncated mapping's, sent (how 0) or from a file truncated under a mapping of its own (1).
// Returns only if the signal was swallowed.
static int foreign_sigbus(int how, const char *path)
{
    garlic_mapping m;
    garlic_error err = {0};
    if (garlic_mapping_open(&m, path, &err) != GARLIC_OK) // the handler is in
        return 2;
    if (how == 0) {
        raise(SIGBUS);
        return 0;
    }
    size_t size = m.size;
    int fd = open(path, O_RDONLY);
    const volatile uint8_t *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED || truncate(path, 0) != 0)
        return 2;
    (void)p[size - 1];
    return 0;
}

// A SIGBUS outside every registered mapping ends the process as it would without us.
static void test_foreign_sigbus_kills(void **state)
{
    (void)state;
    for (int how = 0; how < 2; how++) {
        size_t size;
        const char *path = make_file("foreign.bin", &size);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char arg[16];
            snprintf(arg, sizeof arg, "%d", how);
            execl("/proc/self/exe", "test_mapping", "--foreign-sigbus", arg, path, (char *)NULL);
            _exit(3);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
#ifdef __SANITIZE_ADDRESS__
        // ASan's handler was there first: ours hands it the signal, and it ends the process
        // with its report (exit status 1; the child itself exits 0 or 2).
        if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
            continue;
#endif
        if (WIFEXITED(status))
            fail_msg("case %d: the child exited with %d instead of dying of SIGBUS", how,
                     WEXITSTATUS(status));
        assert_int_equal(WTERMSIG(status), SIGBUS);
    }
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--foreign-sigbus") == 0)
        return foreign_sigbus(atoi(argv[2]), argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_reads_zeros), cmocka_unit_test(test_overwrite_in_place),
        cmocka_unit_test(test_rename_is_no_change),   cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_foreign_sigbus_kills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
