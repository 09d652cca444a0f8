# The tutorial's konsument.py (shared/seed/), for bench/run's scenario 5.
# Lines changed for the benchmark end in "# bench:" comments; see
# bench/RESULTS.md, "Scenario 5", for the list and the reasons.
from flask import Flask, Response
from kafka import KafkaConsumer
import os  # bench: broker, topic and port from the environment


app = Flask(__name__)
topic = os.environ.get('TOPIC', 'dbtech')  # bench: was 'dbtech'
consumer = KafkaConsumer(topic, bootstrap_servers=os.environ['KAFKA_BROKERS'].split(','), group_id='view')  # bench: was ['0.0.0.0:9092']


@app.route('/')
def index():
    return Response(stream_content(), mimetype='multipart/x-mixed-replace; boundary=frame')

def stream_content():
    for message in consumer:
        yield (b'--frame\r\n' b'Content-Type: image/png\r\n'
               b'Content-Length: %d\r\nX-Timestamp: %d.%03d\r\n\r\n' % (len(message.value), message.timestamp // 1000, message.timestamp % 1000)  # bench: headers for the load client
               + message.value + b'\r\n')  # bench: was b'\r\n\r\n', one CRLF too many for a Content-Length


if __name__ == '__main__':
    app.run(host='127.0.0.1', port=int(os.environ.get('PORT', '5000')), debug=True, use_reloader=False)  # bench: was host='0.0.0.0'; no reloader process
