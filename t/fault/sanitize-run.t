# t/fault/sanitize-run, which "make test SANITIZE=1" wraps around prove:
# every kind of sanitizer report fails the run, except leaks of nginx
# itself (a stack wholly in /usr/sbin/nginx); and when the suite runs with
# the ASan module (SANITIZE=1), nginx's workers really have the runtime.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use File::Temp qw(tempdir);
use Test::More;

my $run = "$FindBin::Bin/sanitize-run";
my $dir = tempdir(CLEANUP => 1);

# the reports appear while the command runs, as a sanitized program
# writes them
sub outcome {
    my (%files) = @_;
    my $src = tempdir(DIR => $dir);
    for my $name (keys %files) {
        open my $o, '>', "$src/$name" or die;
        print $o $files{$name};
        close $o;
    }
    my $out = `SANITIZE_DIR=$dir/reports $run sh -c 'cp $src/* "\$SANITIZE_DIR"/ 2>/dev/null; true' 2>&1`;
    return ($? >> 8, $out);
}

my $nginx_leak = <<'_R_';
=================================================================
==42==ERROR: LeakSanitizer: detected memory leaks

Indirect leak of 15360 byte(s) in 1 object(s) allocated from:
    #0 0x7f94100b89cf in __interceptor_malloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:69
    #1 0x55be3acedcfe in ngx_alloc (/usr/sbin/nginx+0x4ccfe)
    #2 0x55be3ace8af7  (/usr/sbin/nginx+0x47af7)
    #5 0x55be3acf1212 in ngx_spawn_process (/usr/sbin/nginx+0x50212)
    #8 0x55be3acc63ad in main (/usr/sbin/nginx+0x253ad)
    #9 0x7f940f045249 in __libc_start_call_main ../sysdeps/nptl/libc_start_call_main.h:58
    #11 0x55be3acc6430 in _start (/usr/sbin/nginx+0x25430)

SUMMARY: AddressSanitizer: 15360 byte(s) leaked in 1 allocation(s).
_R_

(my $module_leak = $nginx_leak) =~ s{(    #2 .*\n)}{$1    #3 0x7f1 in ngx_http_kafka_stream_frame /work/main/ngx_http_kafka_stream_module.c:1920\n};

my ($rc, $out) = outcome();
is($rc, 0, 'no report: exit 0');
like($out, qr/no sanitizer report/, 'says so');

($rc, $out) = outcome('asan.nginx.42' => $nginx_leak);
is($rc, 0, "a leak of nginx's own: exit 0");
like($out, qr/1 leak\(s\) of nginx itself at worker exit left out/,
     'counted as left out');

($rc, $out) = outcome('asan.nginx.43' => $nginx_leak . "\n" . $module_leak);
is($rc, 1, 'a leak with a frame in the module: exit 1');
like($out, qr/ngx_http_kafka_stream_frame/, 'the report is shown');

($rc, $out) = outcome('asan.kafka-stream-producer.7' => $nginx_leak);
is($rc, 1, "a leak in another program: exit 1, whatever the frames");

($rc, $out) = outcome('asan.nginx.44' => "==44==ERROR: AddressSanitizer: "
                      . "heap-use-after-free on address 0x6\n$nginx_leak");
is($rc, 1, 'a memory error in nginx: exit 1');

($rc, $out) = outcome('ubsan.nginx.45' => "ngx_http_kafka_stream_module.c:"
                      . "100:5: runtime error: signed integer overflow\n");
is($rc, 1, 'undefined behaviour: exit 1');

$out = `SANITIZE_DIR=$dir/reports $run sh -c 'exit 3' 2>&1`;
is($? >> 8, 3, "the command's own failure is kept");

# under make test SANITIZE=1: the workers run the ASan module, with the
# runtime loaded
SKIP: {
    my $module = $ENV{TEST_NGINX_LOAD_MODULES} // '';
    skip 'not under make test SANITIZE=1', 2 if $module !~ /nginx-asan/;

    require KafkaStream::Test;
    KafkaStream::Test->import(topics => ['cams:1']);
    require Reliability;
    Reliability->import;

    my $ng = nginx_start(workers => 1, http => stream_http(
                             'location /stream { kafka_stream cams; }'));
    my ($w) = worker_pids($ng);
    open my $maps, '<', "/proc/$w/maps" or die;
    my $m = join '', <$maps>;
    like($m, qr/libasan\.so/, 'the worker has the ASan runtime');
    like($m, qr/\Q$module\E/, 'and the ASan build of the module');
    nginx_stop($ng);
}

done_testing;
