# ngx_http_kafka_stream_module: module, producer, Kafka broker, tests.
#
#   make            build everything under build/ (installs missing packages,
#                   fetches Apache Kafka from Maven Central once)
#   make test       build, then run the whole suite (prove -r t/)
#   make demo       run broker + nginx + producer on a sample video
#   make bench      the benchmarks (bench/run, ~20 min) into bench/RESULTS.md
#   make stress     the 1-hour soak (stress/run; STRESS_DURATION=300: 5 min)
#   make deb        Debian packages of the module and the producer, build/deb/
#   make install    module, load_module snippet and producer into the system
#   make clean      remove build/

SHELL := /bin/bash

PREFIX     ?= /usr/local
DESTDIR    ?=
NGX_SRC    ?= /usr/share/nginx/src
NGX_BIN    ?= /usr/sbin/nginx
NGX_MODDIR ?= /usr/lib/nginx/modules
NGX_AVAIL  ?= /usr/share/nginx/modules-available

BUILD := $(CURDIR)/build
MODULE := ngx_http_kafka_stream_module
MODULE_SO := build/$(MODULE).so
PRODUCER := build/kafka-stream-producer
BROKER := build/kafka-stream-broker
TOPICS := build/kafka-stream-topics
KAFKA_LIBS := build/kafka/libs/.fetched
TEST_PRODUCE := build/kafka-produce

CC ?= cc
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wno-unused-parameter
SANITIZERS := -fsanitize=address,undefined -fno-omit-frame-pointer
SAN_FLAGS := $(if $(filter 1,$(SANITIZE)),$(SANITIZERS))

PKGS_PRODUCER := libavformat libavdevice libavcodec libswscale libavutil \
                 libpng rdkafka
PRODUCER_SRCS := $(wildcard producer/*.c)
PRODUCER_OBJS := $(PRODUCER_SRCS:producer/%.c=build/producer/%.o)

# The project's one version: the module's NGX_HTTP_KAFKA_STREAM_VERSION.
# The producer and the packages take it from there; build/.version changes
# only when it does, so that the producer is rebuilt then.
VERSION := $(shell sed -n \
    's/^[#]define NGX_HTTP_KAFKA_STREAM_VERSION *"\([^"]*\)".*/\1/p' \
    $(MODULE).c $(wildcard src/*.[ch]) | head -n 1)
VERSION_NOW := $(shell mkdir -p build; \
    [ "$$(cat build/.version 2>/dev/null)" = "$(VERSION)" ] \
    || echo "$(VERSION)" > build/.version)

.PHONY: all build deps module producer broker kafka smoke test demo \
        install uninstall clean deb

all: deps
	@$(MAKE) --no-print-directory build

build: $(MODULE_SO) $(PRODUCER) broker $(TEST_PRODUCE) build/mjpeg-load \
       build/scale-time build/fleet-load

deps:
	@tools/install-deps

module: $(MODULE_SO)
producer: $(PRODUCER)
broker: $(BROKER) $(TOPICS) $(KAFKA_LIBS) build/kafka/log4j2.properties
kafka: broker


# The module is compiled the way Debian compiles its own dynamic modules:
# Debian's nginx source and configure flags, --with-compat, so that the
# module's signature matches /usr/sbin/nginx and load_module accepts it.

build/nginx/Makefile: config
	@mkdir -p build/nginx
	cd $(NGX_SRC) && . ./conf_flags \
	    && ./configure --with-compat "$${NGX_CONF_FLAGS[@]}" \
	        --add-dynamic-module=$(CURDIR) --builddir=$(BUILD)/nginx \
	        > $(BUILD)/nginx/configure.log \
	    || { tail -20 $(BUILD)/nginx/configure.log; exit 1; }

$(MODULE_SO): build/nginx/Makefile $(MODULE).c $(wildcard src/*.c src/*.h)
	$(MAKE) -f $(BUILD)/nginx/Makefile -C $(NGX_SRC) modules
	@# a new file, not one written in place: running nginx keep theirs
	cp build/nginx/$(MODULE).so $@.tmp && mv -f $@.tmp $@


build/producer/%.o: producer/%.c
	@test -n "$(VERSION)" || { echo "no NGX_HTTP_KAFKA_STREAM_VERSION" \
	    "in $(MODULE).c or src/" >&2; exit 1; }
	@mkdir -p build/producer
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN_FLAGS) $(WARN) -MMD -MP \
	    -DKSP_VERSION='"$(VERSION)"' \
	    $$(pkg-config --cflags $(PKGS_PRODUCER)) -c -o $@ $<

build/producer/main.o: build/.version

$(PRODUCER): $(PRODUCER_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) $(SAN_FLAGS) -o $@ $^ \
	    $$(pkg-config --libs $(PKGS_PRODUCER)) -lpthread -lm

# Apache Kafka: the jars broker/pom.xml names, from Maven Central (cached in
# ~/.m2), and exactly one SLF4J binding among them, or the broker logs
# nothing (or warns of several)
$(KAFKA_LIBS): broker/pom.xml
	@rm -rf build/kafka/libs
	mvn -B -q -Dstyle.color=never -f broker/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(BUILD)/kafka/libs
	@n=$$(ls build/kafka/libs | grep -cE \
	    '^(log4j-slf4j2?-impl|slf4j-(simple|reload4j|log4j12|jdk14|nop)|logback-classic)-'); \
	    [ "$$n" = 1 ] || { echo "kafka: $$n SLF4J bindings in build/kafka/libs, not 1" >&2; exit 1; }
	@touch $@

build/kafka/log4j2.properties: broker/log4j2.properties
	@mkdir -p build/kafka
	cp $< $@

$(BROKER): broker/kafka-stream-broker
	@mkdir -p build
	cp $< $@

$(TOPICS): broker/topics.c
	@mkdir -p build
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(WARN) -o $@ $< \
	    $$(pkg-config --cflags --libs rdkafka)

# test helper (owned by t/helper): produces messages with arbitrary bytes
# in keys and header values, for t/helper/KafkaStream/Test.pm
$(TEST_PRODUCE): t/helper/kafka-produce.c
	@mkdir -p build
	$(CC) $(CFLAGS) $(WARN) -o $@ $< $$(pkg-config --cflags --libs rdkafka)

# --- bench/mjpeg-load: load and test client (owned by bench/) ---
MJPEG_LOAD_SRCS := $(wildcard bench/mjpeg-load/*.c)

build/mjpeg-load: $(MJPEG_LOAD_SRCS) $(wildcard bench/mjpeg-load/*.h)
	@mkdir -p build
	$(CC) $(CFLAGS) $(SAN_FLAGS) -Wall -Wextra -o $@ $(MJPEG_LOAD_SRCS) -lm
# --- end bench/mjpeg-load ---

# --- bench/scale-time: CPU time of the module's image pipeline (bench/) ---
IMAGE_SRCS := src/ngx_http_kafka_stream_parse.c src/ngx_http_kafka_stream_scale.c
IMAGE_LIBS := -lturbojpeg -lpng

build/scale-time: bench/scale-time/main.c $(IMAGE_SRCS) $(IMAGE_SRCS:.c=.h)
	@mkdir -p build
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(WARN) -Isrc -o $@ $< $(IMAGE_SRCS) \
	    $(IMAGE_LIBS)
# --- end bench/scale-time ---

# bench/fleet-load: a camera fleet from one image, for bench/run's fleet
build/fleet-load: bench/fleet-load/main.c
	@mkdir -p build
	$(CC) $(CFLAGS) $(WARN) -o $@ $< $$(pkg-config --cflags --libs rdkafka)

# --- bench/run: the benchmarks, written to bench/RESULTS.md (owned by bench/) ---
# make bench BENCH_ARGS=--quick (or BENCH_ARGS='--scenarios "1 2"'): shorter
.PHONY: bench
bench: all
	bench/run $(BENCH_ARGS)
# --- end bench/run ---

-include $(PRODUCER_OBJS:.o=.d)


# nginx -t on a configuration that loads the built module

smoke: $(MODULE_SO)
	@mkdir -p build/smoke/logs
	@sed -e 's|@MODULE@|$(CURDIR)/$(MODULE_SO)|' t/smoke.conf \
	    > build/smoke/nginx.conf
	$(NGX_BIN) -t -q -p $(BUILD)/smoke/ -c nginx.conf -e stderr
	@echo "smoke: nginx -t accepts $(MODULE_SO)"


# Test::Nginx: upstream's when it is installed, else ours from t/lib

TEST_ENV = TEST_NGINX_BINARY=$(NGX_BIN) \
    TEST_NGINX_LOAD_MODULES=$(CURDIR)/$(MODULE_SO) \
    TEST_NGINX_KAFKA_BIN=$(BUILD) \
    PERL5LIB=$(CURDIR)/t/helper$$(perl -MTest::Nginx::Socket -e1 \
        2>/dev/null || echo ":$(CURDIR)/t/lib")$${PERL5LIB:+:$$PERL5LIB}

# one Kafka broker for the run (t/with-kafka); test files make their topics
test: all
	@$(MAKE) --no-print-directory smoke fuzzers
	$(TEST_ENV) t/with-kafka prove -r $(if $(T),$(T),t/)


# make demo: the sample videos through broker, producer and nginx, in the
# foreground until Ctrl-C (settings, e.g. DEMO_PORT: see demo/run)

demo: all
	@demo/run


install: build
	install -D -m 0644 $(MODULE_SO) $(DESTDIR)$(NGX_MODDIR)/$(MODULE).so
	install -D -m 0644 conf/mod-http-kafka-stream.conf \
	    $(DESTDIR)$(NGX_AVAIL)/mod-http-kafka-stream.conf
	install -D -m 0755 $(PRODUCER) $(DESTDIR)$(PREFIX)/bin/kafka-stream-producer
	install -D -m 0644 producer/kafka-stream-producer.1 \
	    $(DESTDIR)$(PREFIX)/share/man/man1/kafka-stream-producer.1
	install -D -m 0644 -t $(DESTDIR)$(PREFIX)/share/kafka-stream/html \
	    conf/html/index.html conf/html/viewer.js conf/html/viewer.css

# make deb: the packages libnginx-mod-http-kafka-stream and
# kafka-stream-producer in build/deb/ (tools/make-deb: debhelper with
# dh-sequence-nginx, then lintian), built again when a file of the tree
# changed

ifneq ($(filter build/deb/.built,$(MAKECMDGOALS)),)
DEB_FILES := $(shell { git ls-files --cached --others --exclude-standard \
    || find . -path ./build -prune -o -path ./.git -prune \
              -o -type f -print; } 2>/dev/null)
endif

deb: deps
	@$(MAKE) --no-print-directory build/deb/.built

build/deb/.built: $(wildcard $(DEB_FILES))
	tools/make-deb $(VERSION)
	@touch $@


uninstall:
	rm -f $(DESTDIR)$(NGX_MODDIR)/$(MODULE).so \
	    $(DESTDIR)$(NGX_AVAIL)/mod-http-kafka-stream.conf \
	    $(DESTDIR)$(PREFIX)/bin/kafka-stream-producer \
	    $(DESTDIR)$(PREFIX)/share/man/man1/kafka-stream-producer.1
	rm -rf $(DESTDIR)$(PREFIX)/share/kafka-stream

clean:
	rm -rf build t/servroot


# --- fuzzing: libFuzzer targets for the module's pure functions ---
# make fuzz [FUZZ_SECONDS=60]; a short run of each is part of make test

FUZZ_TARGETS := $(patsubst fuzz/%.c,build/fuzz/%,$(wildcard fuzz/*.c))
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=all -Isrc

build/fuzz/%: fuzz/%.c $(IMAGE_SRCS) $(IMAGE_SRCS:.c=.h)
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(IMAGE_SRCS) $(IMAGE_LIBS)

fuzzers: $(FUZZ_TARGETS)

fuzz: deps
	@$(MAKE) --no-print-directory fuzzers
	@set -o pipefail; for t in $(FUZZ_TARGETS); do \
	    n=$$(basename $$t); mkdir -p build/fuzz/corpus-$$n; \
	    seeds=; [ -d fuzz/seeds/$$n ] && seeds=fuzz/seeds/$$n; \
	    echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	    $$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        build/fuzz/corpus-$$n $$seeds 2>&1 \
	        | grep -E '^(stat::number_of_executed_units|Done|==|SUMMARY)' \
	        || exit 1; \
	done

.PHONY: fuzz fuzzers
# --- end fuzzing ---


# --- reliability: SANITIZE=1 for the module, make stress (owned by t/fault, stress/) ---
# make test SANITIZE=1: the producer, broker and load client get ASan/UBSan
# (SAN_FLAGS above); the module is built with them too, in an nginx build
# directory of its own, and nginx runs with the ASan runtime preloaded
# (Debian's nginx is not built with it; build/nginx-asan/nginx is that
# wrapper).  t/fault/sanitize-run sends every report to build/sanitize/
# and fails the run on any.  Whatever was built with other sanitizer
# settings is rebuilt.

SAN_STAMP := build/.sanitize
SAN_NOW := $(shell mkdir -p build; \
    if [ ! -e $(SAN_STAMP) ]; then echo "$(SAN_FLAGS)" > $(SAN_STAMP); \
        [ -z "$(SAN_FLAGS)" ] && touch -d @0 $(SAN_STAMP); \
    elif [ "$$(cat $(SAN_STAMP))" != "$(SAN_FLAGS)" ]; then \
        echo "$(SAN_FLAGS)" > $(SAN_STAMP); fi)
$(PRODUCER_OBJS) $(TOPICS) build/mjpeg-load build/scale-time: $(SAN_STAMP)

ASAN_NGX := build/nginx-asan
MODULE_SO_ASAN := $(ASAN_NGX)/$(MODULE).so

$(ASAN_NGX)/Makefile: config
	@mkdir -p $(ASAN_NGX)
	cd $(NGX_SRC) && . ./conf_flags \
	    && ./configure --with-compat "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt='-g -O1 $(SANITIZERS)' \
	        --with-ld-opt='$(SANITIZERS) -Wl,-z,nodelete' \
	        --add-dynamic-module=$(CURDIR) --builddir=$(BUILD)/nginx-asan \
	        > $(BUILD)/nginx-asan/configure.log \
	    || { tail -20 $(BUILD)/nginx-asan/configure.log; exit 1; }

$(MODULE_SO_ASAN): $(ASAN_NGX)/Makefile $(MODULE).c $(wildcard src/*.[ch])
	$(MAKE) -f $(BUILD)/nginx-asan/Makefile -C $(NGX_SRC) modules
	@touch $@

# nginx leaks its own cycle at exit (nginx -s reload, nginx -t): its exit
# status must stay nginx's, so leaks do not change it here; t/fault/
# sanitize-run judges every leak report.
$(ASAN_NGX)/nginx: $(MODULE_SO_ASAN) Makefile
	@printf '#!/bin/sh\n# nginx with the ASan/UBSan runtime, for %s\nLSAN_OPTIONS="exitcode=0$${LSAN_OPTIONS:+:$$LSAN_OPTIONS}" LD_PRELOAD=%s:%s exec %s "$$@"\n' \
	    '$(MODULE_SO_ASAN)' "$$($(CC) -print-file-name=libasan.so)" \
	    "$$($(CC) -print-file-name=libubsan.so)" '$(NGX_BIN)' > $@
	@chmod +x $@

ifeq ($(SANITIZE),1)
test: $(ASAN_NGX)/nginx
TEST_ENV += TEST_NGINX_BINARY=$(CURDIR)/$(ASAN_NGX)/nginx \
    TEST_NGINX_LOAD_MODULES=$(CURDIR)/$(MODULE_SO_ASAN) \
    t/fault/sanitize-run
endif

# make test TEST_NGINX_USE_VALGRIND=1: valgrind keeps the symbols of the
# module and librdkafka after nginx unloads them, so that valgrind.suppress
# can name third-party code (by hand: VALGRIND_OPTS=--keep-debuginfo=yes)
ifneq ($(TEST_NGINX_USE_VALGRIND),)
export VALGRIND_OPTS := --keep-debuginfo=yes $(VALGRIND_OPTS)
endif

# make stress [STRESS_DURATION=3600]: the soak (stress/run, see README)
stress: all
	$(TEST_ENV) stress/run

.PHONY: stress
# --- end reliability ---
