# Spaceport: one plain GNU Makefile.  Modules describe themselves in */module.mk;
# this file turns those descriptions into libraries, programs and tests.
#
#   make            build bin/runtimed bin/spacectl bin/spaceproxy bin/spacebox
#   make deps       install every build and test dependency (idempotent, fast when done)
#   make test       unit tests (plain and ASan+UBSan, TAP via prove) + pytest suites
#   make check      clang-format check, cppcheck, banned-call lint
#   make bench      benchmarks under tests/bench (print figures, never pass/fail)
#   make run        start runtimed and spaceproxy with embedded defaults
#   make V=1        show commands;  make DEVELOPER=  release build without -Werror

SHELL      := /bin/bash
.DEFAULT_GOAL := all
CC         ?= cc
BUILD      ?= build
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DEVELOPER  ?= 1
VENV       ?= .venv
PYTHON     := $(VENV)/bin/python
PYTEST     := $(VENV)/bin/pytest
VERSION    := $(shell cat VERSION 2>/dev/null || echo 0.1.0-dev)

STD    = -std=gnu17 -D_GNU_SOURCE -DSPACEPORT_VERSION='"$(VERSION)"'
WARN   = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
         -Werror=format-security -Wwrite-strings -Wpointer-arith -Wimplicit-fallthrough \
         -Wundef -Wno-unused-parameter -Wno-format-truncation
ifneq ($(DEVELOPER),)
WARN  += -Werror
endif
HARDEN   = -fstack-protector-strong -fstack-clash-protection -fcf-protection -fPIE -fno-common
LDHARDEN = -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack -Wl,--as-needed
INCLUDES = -I. -Icommon

# Two variants share the sources: "dev" (optimised, _FORTIFY_SOURCE=3; bin/ comes from
# it) and "asan" (AddressSanitizer + UBSan, for the unit tests and fuzz replays).
CFLAGS_dev  = -O2 -g -D_FORTIFY_SOURCE=3
CFLAGS_asan = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
              -fno-omit-frame-pointer
LDFLAGS_dev  =
LDFLAGS_asan = -fsanitize=address,undefined
VARIANTS = dev asan

ifeq ($(V),)
Q = @
QUIET_CC = @echo '   CC     $@';
QUIET_LD = @echo '   LD     $@';
QUIET_AR = @echo '   AR     $@';
endif

LIBS :=
PROGS :=
include $(sort $(wildcard */*.mk))

ALL_PKGS := $(sort $(foreach l,$(LIBS),$($(l)_PKGS)) $(foreach p,$(PROGS),$($(p)_PKGS)))
PKG_CFLAGS := $(if $(ALL_PKGS),$(shell pkg-config --cflags $(ALL_PKGS) 2>/dev/null))
pkglibs = $(if $(1),$(shell pkg-config --libs $(1) 2>/dev/null))

# --- objects ---------------------------------------------------------------------------
# The flags of each variant are kept in a file that is rewritten only when they change,
# so changing CFLAGS rebuilds everything and nothing else does.
define VARIANT_template
$(BUILD)/$(1)/flags: FORCE
	@mkdir -p $$(@D)
	@echo '$$(CC) $$(STD) $$(WARN) $$(HARDEN) $$(CFLAGS_$(1)) $$(CFLAGS) $$(PKG_CFLAGS) $$(LDFLAGS_$(1)) $$(LDFLAGS)' > $$@.new
	@cmp -s $$@.new $$@ && rm -f $$@.new || mv -f $$@.new $$@

$(BUILD)/$(1)/%.o: %.c $(BUILD)/$(1)/flags
	@mkdir -p $$(@D)
	$$(QUIET_CC)$$(CC) $$(STD) $$(WARN) $$(HARDEN) $$(CFLAGS_$(1)) $$(CFLAGS) $$(INCLUDES) \
		$$(PKG_CFLAGS) $$($$(firstword $$(subst /, ,$$*))_CFLAGS) -MMD -MP -c -o $$@ $$<
endef
$(foreach v,$(VARIANTS),$(eval $(call VARIANT_template,$(v))))

objs = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))

# --- libraries: $(lib)_SRCS, $(lib)_PKGS, $(lib)_DEPS (other libs it needs) -----------
define LIB_template
$(BUILD)/$(2)/lib$(1).a: $(call objs,$(2),$($(1)_SRCS))
	@mkdir -p $$(@D)
	$$(QUIET_AR)rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach v,$(VARIANTS),$(foreach l,$(LIBS),$(eval $(call LIB_template,$(l),$(v)))))

# A library's full link closure: itself, then what it depends on (common last).
libclosure = $(strip $(foreach l,$(1),$(l) $(call libclosure,$($(l)_DEPS))))
linklibs = $(foreach l,$(call uniqlast,$(call libclosure,$(2))),$(BUILD)/$(1)/lib$(l).a)
uniqlast = $(if $(1),$(if $(filter $(firstword $(1)),$(wordlist 2,999,$(1))),,$(firstword $(1))) $(call uniqlast,$(wordlist 2,999,$(1))))
pkgclosure = $(sort $(foreach l,$(call libclosure,$(1)),$($(l)_PKGS)))

# --- programs: $(prog)_SRCS, $(prog)_LIBS, $(prog)_PKGS, $(prog)_LDLIBS -------------------
define PROG_template
$(BUILD)/$(2)/bin/$(1): $(call objs,$(2),$($(1)_SRCS)) $(call linklibs,$(2),$($(1)_LIBS))
	@mkdir -p $$(@D)
	$$(QUIET_LD)$$(CC) $$(LDHARDEN) $$(LDFLAGS_$(2)) $$(LDFLAGS) -o $$@ $$^ \
		$$(call pkglibs,$$(sort $($(1)_PKGS) $$(call pkgclosure,$($(1)_LIBS)))) $($(1)_LDLIBS) -lm
endef
$(foreach v,$(VARIANTS),$(foreach p,$(PROGS),$(eval $(call PROG_template,$(p),$(v)))))

bin/%: $(BUILD)/dev/bin/%
	@mkdir -p bin
	$(Q)cp -f $< $@

BINS := $(addprefix bin/,$(PROGS))
all: $(BINS)

# --- unit tests: tests/unit/<lib>/test-*.c, each linked with <lib> and its closure ---------
UNIT_SRCS := $(sort $(wildcard tests/unit/*/test-*.c))
unit_lib = $(word 3,$(subst /, ,$(1)))
define UNIT_template
$(BUILD)/$(2)/$(basename $(1)): $(call objs,$(2),$(1)) $(call linklibs,$(2),$(call unit_lib,$(1)) $(unit_$(call unit_lib,$(1))_LIBS))
	@mkdir -p $$(@D)
	$$(QUIET_LD)$$(CC) $$(LDHARDEN) $$(LDFLAGS_$(2)) $$(LDFLAGS) -o $$@ $$^ \
		$$(call pkglibs,$$(call pkgclosure,$(call unit_lib,$(1)) $(unit_$(call unit_lib,$(1))_LIBS))) -lm
endef
$(foreach v,$(VARIANTS),$(foreach t,$(UNIT_SRCS),$(eval $(call UNIT_template,$(t),$(v)))))
UNIT_BINS = $(foreach v,$(VARIANTS),$(patsubst %.c,$(BUILD)/$(v)/%,$(UNIT_SRCS)))

# --- helpers built for the tests (static probes that run inside sandboxes) ---------------
HELPER_SRCS := $(sort $(wildcard tests/helpers/*.c))
HELPER_BINS := $(patsubst tests/helpers/%.c,$(BUILD)/helpers/%,$(HELPER_SRCS))
$(BUILD)/helpers/%: tests/helpers/%.c
	@mkdir -p $(@D)
	$(QUIET_LD)$(CC) $(STD) $(WARN) -O2 -static -o $@ $<

# --- dependencies ------------------------------------------------------------------------
deps:
	$(Q)ops/deps.sh

# --- tests -------------------------------------------------------------------------------
# make test installs what is missing first, then re-reads this Makefile (pkg-config
# answers only after the -dev packages exist).
# Building uses every core; the tests themselves run one suite at a time.
NPROC := $(shell nproc 2>/dev/null || echo 2)
test: deps
	$(Q)$(MAKE) --no-print-directory -j$(NPROC) test-build
	$(Q)$(MAKE) --no-print-directory test-run

test-build: all $(UNIT_BINS) $(HELPER_BINS)

test-run: test-build
	$(Q)$(MAKE) --no-print-directory test-unit
	$(Q)$(MAKE) --no-print-directory test-integration

test-unit: $(UNIT_BINS)
	@echo '== unit tests (plain, then ASan+UBSan) =='
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
		prove --exec '' $(UNIT_BINS)

PYTEST_DIRS ?= $(wildcard tests/integration tests/security tests/e2e)
test-integration: all $(HELPER_BINS)
	@echo '== integration, security and end-to-end tests (pytest) =='
	$(Q)SPACEPORT_BIN=$(CURDIR)/bin SPACEPORT_BUILD=$(CURDIR)/$(BUILD) \
		$(PYTEST) -q -p no:cacheprovider $(PYTEST_ARGS) $(PYTEST_DIRS)

# --- static analysis and format ----------------------------------------------------------
C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
check: deps
	$(Q)$(MAKE) --no-print-directory check-run
check-run: style lint cppcheck
style:
	@echo '== clang-format =='
	$(Q)clang-format --dry-run --Werror $(C_FILES)
# cppcheck does not understand __attribute__((cleanup)), so its leak checks report every
# _cleanup_free_/_cleanup_close_ variable; LeakSanitizer in the ASan unit tests covers leaks.
cppcheck:
	@echo '== cppcheck =='
	$(Q)cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability \
		--inline-suppr --suppress=missingIncludeSystem --suppress=memleak \
		--suppress=resourceLeak --suppress=leakReturnValNotUsed -I common -I . $(C_FILES)
lint:
	@echo '== lint: every fd close-on-exec from birth =='
	$(Q)ops/lint-cloexec.sh $(C_FILES)
format:
	$(Q)clang-format -i $(C_FILES)

# --- benchmarks, fuzzing, running --------------------------------------------------------
bench: deps
	$(Q)$(MAKE) --no-print-directory all $(HELPER_BINS)
	$(Q)for b in $(sort $(wildcard tests/bench/bench_*.py)); do \
		echo "== $$b =="; SPACEPORT_BIN=$(CURDIR)/bin $(PYTHON) $$b || exit 1; done

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)ops/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	$(Q)PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) SYSCONFDIR=$(SYSCONFDIR) ops/install.sh

clean:
	rm -rf $(BUILD) bin

FORCE:
.PHONY: all deps test test-build test-run test-unit test-integration check check-run style cppcheck \
	lint format bench run install clean FORCE

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
