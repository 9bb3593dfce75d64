# vigil — one non-recursive Makefile; objects out of tree in $(BUILD).
# make            build build/vigild (with build/vigil-zygote, its worker zygote) and build/vigil
# make deps       install missing Debian packages (root) or print the apt-get line
# make run        deps + build + start vigild on 127.0.0.1:8000
# make test       deps + build + every test (C units, busted specs, conformance, e2e)
# make check      the same tests against an ASan+UBSan build in build/asan
# make bench      benchmarks, figures printed
# make lint | format | format-check | clean

PKG_CONFIG ?= pkg-config
CC         ?= cc
LUA        ?= lua5.4
BUSTED     ?= busted --lua=$(LUA)
BUILD      ?= build
SANITIZER  ?=
WERROR     ?= 1
OPT        ?= -O2

PKGS_CORE = lua5.4 lua5.4-lpeg lua5.4-cjson libseccomp libpcre2-8
PKGS_HOST = libmicrohttpd sqlite3 jansson

WARN = -Wall -Wextra -Wshadow -Wundef -Wwrite-strings -Wstrict-prototypes -Wmissing-prototypes \
       -Wmissing-declarations -Wredundant-decls -Wcast-qual -Wpointer-arith -Wformat=2 \
       -Wformat-security -Wnull-dereference -Wdouble-promotion -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif

ifneq ($(SANITIZER),)
SANFLAGS = -fsanitize=$(SANITIZER) -fno-sanitize-recover=all -fno-omit-frame-pointer
HARDEN_CC = -fstack-protector-strong -fPIE
else
SANFLAGS =
HARDEN_CC = -fstack-protector-strong -fPIE $(if $(filter -O0,$(OPT)),,-D_FORTIFY_SOURCE=2)
endif
HARDEN_LD = -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack

# pkg-config is asked only when building, so `make deps` works on a bare machine.
pc_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pc_libs   = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)

CPPFLAGS += -D_GNU_SOURCE -Icore -I$(BUILD)/gen
CFLAGS   += -std=c11 $(OPT) -g $(WARN) $(HARDEN_CC) $(SANFLAGS) -MMD -MP
LDFLAGS  += $(HARDEN_LD) $(SANFLAGS)

CORE_CFLAGS = $(call pc_cflags,$(PKGS_CORE))
HOST_CFLAGS = $(call pc_cflags,$(PKGS_HOST))
# LPeg and cjson are linked statically: nothing may be dlopen'ed once the jail is closed.
# strbuf_new/strbuf_free are wrapped: cjson's decode buffer is freed after a capped decode
# (core/sandbox.c).
CORE_LIBS = -Wl,--wrap=strbuf_new -Wl,--wrap=strbuf_free \
            -Wl,-Bstatic -llua5.4-lpeg -llua5.4-cjson -Wl,-Bdynamic \
            $(call pc_libs,lua5.4 libseccomp libpcre2-8) -lm
HOST_LIBS = $(call pc_libs,$(PKGS_HOST)) -lpthread

CORE_SRCS = $(sort $(wildcard core/*.c))
HOST_SRCS = $(sort $(filter-out host/main.c,$(wildcard host/*.c)))
CLI_SRCS  = $(sort $(wildcard cli/*.c))
LUA_SRCS  = $(sort $(shell find lua -name '*.lua' 2>/dev/null))
CTESTS    = $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/c/test_*.c)))

CORE_OBJS = $(patsubst %.c,$(BUILD)/obj/%.o,$(CORE_SRCS)) $(BUILD)/obj/gen/lua_bundle.o
HOST_OBJS = $(patsubst %.c,$(BUILD)/obj/%.o,$(HOST_SRCS))

all: $(BUILD)/vigild $(BUILD)/vigil-zygote $(BUILD)/vigil $(BUILD)/lua/vregex.so

$(BUILD)/gen/lua_bundle.c: tools/bundle.lua $(LUA_SRCS)
	@mkdir -p $(dir $@)
	$(LUA) tools/bundle.lua lua $@

$(BUILD)/obj/gen/lua_bundle.o: $(BUILD)/gen/lua_bundle.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-overlength-strings -c $< -o $@

$(BUILD)/obj/core/%.o: core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CORE_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/host/%.o: host/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Ihost $(HOST_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/cli/%.o: cli/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/tests/c/%.o: tests/c/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Ihost -Itests/c $(CORE_CFLAGS) $(HOST_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libvigilcore.a: $(CORE_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/vigild: $(BUILD)/obj/host/main.o $(HOST_OBJS) $(BUILD)/libvigilcore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(HOST_LIBS) $(CORE_LIBS)

# The worker zygote (core/worker.h), started by vigild from the file next to it: core and the
# worker's libraries only (no libmicrohttpd/gnutls/sqlite/jansson). With ZYGOTE_STATIC=1 (the
# default outside sanitizer builds) a static PIE: no dynamic loader and no shared library
# mapped, so an idle worker keeps resident only the code it runs (VmRSS ~2.3 instead of ~2.9
# MiB). It then carries its own copies of libc, Lua, PCRE2 and libseccomp: rebuild it
# (`make clean all`) after a security update of their -dev packages. dlopen is wrapped to a
# stub (core/zygote/main.c): nothing is ever loaded in a worker.
ZYGOTE_STATIC ?= $(if $(SANITIZER),0,1)
ifeq ($(ZYGOTE_STATIC),1)
ZYG_LINK = $(filter-out -pie,$(LDFLAGS)) -static-pie
ZYG_LIBS = -Wl,--wrap=strbuf_new -Wl,--wrap=strbuf_free -Wl,--wrap=dlopen \
           -Wl,-Bstatic -llua5.4-lpeg -llua5.4-cjson -llua5.4 -lseccomp -lpcre2-8 -lm
else
ZYG_LINK = $(LDFLAGS)
ZYG_LIBS = -Wl,--wrap=dlopen $(CORE_LIBS)
endif
$(BUILD)/vigil-zygote: $(BUILD)/obj/core/zygote/main.o $(BUILD)/libvigilcore.a
	$(CC) $(ZYG_LINK) -o $@ $^ $(ZYG_LIBS)

$(BUILD)/vigil: $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRCS)) $(BUILD)/libvigilcore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CORE_LIBS)

# The PCRE2 binding as a loadable module, for busted specs run by the stock lua5.4.
$(BUILD)/lua/vregex.so: core/lregex.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CORE_CFLAGS) -std=c11 $(OPT) -g $(WARN) -fPIC -shared -DVREGEX_MODULE \
	    -o $@ $< $(call pc_libs,libpcre2-8)

$(BUILD)/tests/%: $(BUILD)/obj/tests/c/%.o $(HOST_OBJS) $(BUILD)/libvigilcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(HOST_LIBS) $(CORE_LIBS)

# C benchmarks (not in `all`): build/bench/core_bench ...
$(BUILD)/bench/%: bench/%.c $(BUILD)/libvigilcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CORE_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS)

deps:
	@sh mk/deps.sh

# Test isolation: Lua paths point at this tree and the system only.
TEST_ENV = LUA_PATH='lua/runtime/?.lua;lua/runtime/?/init.lua;lua/?.lua;tests/spec/?.lua;;' \
           LUA_CPATH='$(BUILD)/lua/?.so;;' VIGIL_BUILD=$(BUILD) BUSTED='$(BUSTED)' LUA=$(LUA)

test: deps
	@$(MAKE) --no-print-directory all $(CTESTS)
	@$(TEST_ENV) sh tests/run.sh

check: deps
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZER=address,undefined OPT=-O1 \
	    all $(patsubst $(BUILD)/%,build/asan/%,$(CTESTS))
	@ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(MAKE) --no-print-directory BUILD=build/asan test-only

test-only:
	@$(TEST_ENV) sh tests/run.sh

run: deps all
	./$(BUILD)/vigild --listen 127.0.0.1:8000 --db vigil.db

bench: deps all
	@$(TEST_ENV) sh bench/run.sh

lint:
	luacheck lua tests/spec
	cppcheck --enable=warning,style,performance,portability --std=c11 --inline-suppr \
	    --error-exitcode=1 --suppress=missingIncludeSystem -I core -I host core host cli tests/c

format:
	clang-format -i core/*.[ch] host/*.[ch] cli/*.[ch] tests/c/*.[ch]

format-check:
	clang-format --dry-run --Werror core/*.[ch] host/*.[ch] cli/*.[ch] tests/c/*.[ch]

clean:
	rm -rf build

.PHONY: all deps test check test-only run bench lint format format-check clean
.SECONDARY:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
