# "nginx -t" fails, naming the directive and the problem, for each kind of
# bad configuration; and accepts a good one.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES}
             || "$ENV{PWD}/build/ngx_http_kafka_stream_module.so";

my $dir = tempdir(CLEANUP => 1);
mkdir "$dir/logs";


# runs "nginx -t" on an http{} body; returns (exit code, output)
sub nginx_t {
    my ($http, $main) = @_;

    open my $conf, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!";
    print $conf "load_module $module;\n", $main // '',
                "error_log logs/error.log;\npid logs/nginx.pid;\n",
                "events { }\nhttp {\n$http\n}\n";
    close $conf;

    my $out = `$nginx -t -p $dir/ -c nginx.conf -e stderr 2>&1`;
    return ($? >> 8, $out);
}


my @bad = (
    [ 'brokers missing',
      'server { listen 127.0.0.1:1; location /s { kafka_stream dbtech; } }',
      qr/"kafka_stream_brokers" is required/ ],

    [ 'stream directive at server level',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1; kafka_stream dbtech; }',
      qr/"kafka_stream" directive is not allowed here/ ],

    [ 'brokers inside a location',
      'server { listen 127.0.0.1:1;
                location /s { kafka_stream_brokers a:1; kafka_stream t; } }',
      qr/"kafka_stream_brokers" directive is not allowed here/ ],

    [ 'bad frame size',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_max_frame_size 8q; } }',
      qr/"kafka_stream_max_frame_size" directive invalid value/ ],

    [ 'zero frame size',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_max_frame_size 0; } }',
      qr/"kafka_stream_max_frame_size" must not be zero/ ],

    [ 'bad partition',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_partition first; } }',
      qr/invalid value "first" in "kafka_stream_partition"/ ],

    [ 'bad idle resend',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_idle_resend soon; } }',
      qr/"kafka_stream_idle_resend" directive invalid value/ ],

    [ 'bad max viewers',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_max_viewers -3; } }',
      qr/"kafka_stream_max_viewers" directive invalid number/ ],

    [ 'bad boundary',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_boundary "a b"; } }',
      qr/invalid value "a b" in "kafka_stream_boundary"/ ],

    [ 'bad topic name',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1; location /s { kafka_stream "a/b"; } }',
      qr/invalid topic name "a\/b" in "kafka_stream"/ ],

    [ 'unknown librdkafka property',
      'kafka_stream_brokers 127.0.0.1:9092;
       kafka_stream_option no.such.property 1;',
      qr/invalid "kafka_stream_option" "no.such.property" "1": .*No such configuration property/ ],

    [ 'librdkafka rejects the value',
      'kafka_stream_brokers 127.0.0.1:9092;
       kafka_stream_option fetch.wait.max.ms forever;',
      qr/invalid "kafka_stream_option" "fetch.wait.max.ms" "forever": .*fetch.wait.max.ms/ ],

    [ 'no cameras for a wall',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /w { kafka_stream_wall t; kafka_stream_wall_keys 0; } }',
      qr/"kafka_stream_wall_keys" must be from 1 to 1024/ ],

    [ 'bad wall keys',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /w { kafka_stream_wall t; kafka_stream_wall_keys all; } }',
      qr/"kafka_stream_wall_keys" directive invalid number/ ],

    [ 'a wall and a stream in one location',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /w { kafka_stream t; kafka_stream_wall t; } }',
      qr/"kafka_stream_wall" directive is duplicate/ ],
    [ 'a size of no pixels',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_sizes 160 0; } }',
      qr/invalid value "0" in "kafka_stream_sizes": expected "off" or widths in pixels from 8 to 16384/ ],

    [ 'a size that is not a number',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_sizes 320px; } }',
      qr/invalid value "320px" in "kafka_stream_sizes"/ ],

    [ 'a size too large',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_sizes 99999; } }',
      qr/invalid value "99999" in "kafka_stream_sizes"/ ],

    [ 'too many sizes',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t;
                    kafka_stream_sizes ' . join(' ', map { $_ * 10 } 1 .. 17)
      . '; } }',
      qr/"kafka_stream_sizes": at most 16 sizes/ ],

    [ 'sizes twice',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_sizes 160;
                              kafka_stream_sizes 320; } }',
      qr/"kafka_stream_sizes" directive is duplicate/ ],

    [ 'JPEG quality out of range',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_quality 101; } }',
      qr/"kafka_stream_quality" directive .*between 1 and 100/ ],

    [ 'stream directive twice',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_snapshot t; } }',
      qr/"kafka_stream_snapshot" directive is duplicate/ ],

    [ 'unknown partitioner',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t;
                              kafka_stream_partitioner murmur3; } }',
      qr/invalid value "murmur3" in "kafka_stream_partitioner": expected murmur2, murmur2_random, consistent, consistent_random, fnv1a, fnv1a_random, random or all/ ],

    [ 'partitioner named in another case',
      'kafka_stream_brokers 127.0.0.1:9092;
       kafka_stream_partitioner Murmur2;',
      qr/invalid value "Murmur2" in "kafka_stream_partitioner"/ ],

    [ 'partitioner twice',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_partitioner all;
                              kafka_stream_partitioner murmur2; } }',
      qr/"kafka_stream_partitioner" directive is duplicate/ ],

    [ 'bad linger',
      'kafka_stream_brokers 127.0.0.1:9092; kafka_stream_linger a while;',
      qr/invalid number of arguments in "kafka_stream_linger"/ ],

    [ 'linger not a time',
      'kafka_stream_brokers 127.0.0.1:9092; kafka_stream_linger soon;',
      qr/"kafka_stream_linger" directive invalid value/ ],

    [ 'linger in a location',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t; kafka_stream_linger 1s; } }',
      qr/"kafka_stream_linger" directive is not allowed here/ ],

    [ 'no catch-up',
      'kafka_stream_brokers 127.0.0.1:9092; kafka_stream_catchup 0;',
      qr/"kafka_stream_catchup" must not be zero/ ],

    [ 'bad catch-up',
      'kafka_stream_brokers 127.0.0.1:9092; kafka_stream_catchup many;',
      qr/"kafka_stream_catchup" directive invalid number/ ],

    [ 'bad always_consume',
      'kafka_stream_brokers 127.0.0.1:9092;
       server { listen 127.0.0.1:1;
                location /s { kafka_stream t;
                              kafka_stream_always_consume yes; } }',
      qr/invalid value "yes" in "kafka_stream_always_consume"/ ],
);

for my $case (@bad) {
    my ($name, $http, $re) = @$case;
    my ($rc, $out) = nginx_t($http);

    isnt($rc, 0, "$name: nginx -t fails");
    like($out, $re, "$name: the message says why");
}

my ($rc, $out) = nginx_t(
    'kafka_stream_brokers 127.0.0.1:9092;
     kafka_stream_option fetch.wait.max.ms 20;
     kafka_stream_option socket.keepalive.enable true;
     kafka_stream_linger 10s;
     kafka_stream_catchup 64;
     kafka_stream_partitioner fnv1a;
     server {
         listen 127.0.0.1:1;
         kafka_stream_max_frame_size 2m;
         location /stream   { kafka_stream dbtech; kafka_stream_partition all; }
         location /cam      { kafka_stream dbtech; kafka_stream_key $arg_id; }
         location /one      { kafka_stream dbtech; kafka_stream_partition 3; }
         location /crc      { kafka_stream dbtech; kafka_stream_key $arg_id;
                              kafka_stream_partitioner consistent_random; }
         location /hot      { kafka_stream dbtech;
                              kafka_stream_always_consume on; }
         location /snapshot { kafka_stream_snapshot dbtech; }
         location /wall     { kafka_stream_wall dbtech; kafka_stream_wall_keys 16; }
         location /sized    { kafka_stream dbtech; kafka_stream_sizes 640 160 320 160;
                              kafka_stream_quality 60; }
         location /thumb    { kafka_stream_snapshot dbtech; kafka_stream_sizes 80; }
         location /none     { kafka_stream dbtech; kafka_stream_sizes off; }
         location /status   { kafka_stream_status; }
     }');

is($rc, 0, 'a good configuration passes nginx -t') or diag($out);

done_testing();
